// Request framing: finds each request in the bytes a client sends (argv views plus
// the raw byte range to forward), in place, in the client's input buffer: nothing is
// copied, and a partly received request is resumed where its framing stopped, so a
// large value arriving in many reads is scanned once. Inline commands ("PING\r\n"
// typed into nc) are split as Redis splits them and given a RESP encoding to forward.
//
// Why not hiredis's redisReader, as the control plane uses: it copies every byte fed
// to it into a buffer of its own and memmoves the rest of that buffer after each
// kilobyte consumed; on the GET path that was the only copy besides the one into the
// backend's output. Framing a request needs no objects, only the rules below.
//
// The rules and error texts are Redis's (networking.c, processMultibulkBuffer and
// processInlineBuffer): "*<n>\r\n" with n <= 0 is ignored; each argument must be
// "$<len>\r\n<len bytes>\r\n"; a header line longer than 64 kB without its "\r\n" is
// an error; errors close the connection once earlier replies are out.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "resp/buffer.h"

namespace headroom::resp {

struct RequestLimits {
  uint64_t max_request_bytes = 512ull << 20;
  uint64_t max_bulk_bytes = 512ull << 20;
  uint32_t max_args = 1024 * 1024;
};

// One framed request. Every argv view lies inside `raw`. Views are valid until the
// caller consumes `consumed` bytes from the input buffer or calls next() again.
struct RequestView {
  std::span<const std::string_view> argv;  // empty: nothing to run ("*0", a blank line)
  std::string_view raw;   // RESP bytes to forward (for inline requests: a RESP encoding)
  size_t consumed = 0;    // input bytes this request used; the caller consumes them
  bool is_inline = false;
};

class RequestFramer {
 public:
  enum class Result { kRequest, kNeedMore, kError };

  explicit RequestFramer(const RequestLimits& limits) : limits_(limits) {}

  // Frames the next request at the head of `in`, which must start with the first byte
  // not yet consumed and may have grown (or moved) since the last call. kError:
  // error() holds the reply text without the leading '-'.
  Result next(const Buffer& in, RequestView& out);

  const std::string& error() const { return error_; }

 private:
  Result next_multibulk(const Buffer& in, RequestView& out);
  Result next_inline(const Buffer& in, RequestView& out);
  Result fail(std::string msg);
  void reset_progress();

  RequestLimits limits_;
  std::string error_;

  // Progress through the request at the head of the buffer, as offsets from the head.
  struct ArgPos {
    size_t offset;
    size_t len;
  };
  size_t pos_ = 0;             // bytes of it framed so far
  int64_t args_expected_ = -1; // from its "*<n>" line, once read
  int64_t bulk_len_ = -1;      // the argument being received, once its "$<len>" line is read
  std::vector<ArgPos> args_;   // arguments complete so far
  std::vector<std::string_view> argv_;   // the views handed out, reused
  std::vector<std::string> inline_args_; // an inline request's arguments, split
  Buffer inline_raw_;                    // an inline request's RESP encoding
  std::vector<size_t> inline_offsets_;   // where each argument lies in it
};

}  // namespace headroom::resp
