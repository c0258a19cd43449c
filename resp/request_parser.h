// Request framing: turns the bytes a client sends into requests (argv + raw bytes).
//
// hiredis's redisReader does the RESP framing; we give it callbacks that create no
// objects, only record where each argument lies. The reader copies what it is fed
// into its own buffer and compacts that buffer on its own schedule, so the callbacks
// record *stream offsets* (bytes since the connection opened) and argv views point
// into the client's input Buffer, which the client owns and only compacts between
// reads. Inline commands ("PING\r\n" typed into nc) are split here, as Redis does.
//
// Errors use Redis's wording ("Protocol error: invalid bulk length", ...); after an
// error the connection must be closed, as Redis closes it.
#pragma once

#include <hiredis/read.h>

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

// One framed request. Views are valid until the caller consumes `consumed` bytes from
// the input buffer or calls next() again.
struct RequestView {
  std::span<const std::string_view> argv;
  std::string_view raw;  // RESP bytes to forward (for inline requests: a RESP encoding)
  size_t consumed = 0;   // input bytes this request used; the caller consumes them
  bool is_inline = false;
};

class RequestParser {
 public:
  enum class Result { kRequest, kNeedMore, kError };

  explicit RequestParser(const RequestLimits& limits);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Tells the parser about bytes just appended to the client's input buffer.
  void feed(const char* p, size_t n);

  // Frames the next request at the head of `in` (whose head must be the first byte
  // not yet consumed). kError: error() holds the reply text without the leading '-'.
  Result next(const Buffer& in, RequestView& out);

  const std::string& error() const { return error_; }

 private:
  friend struct ParserCallbacks;
  Result next_multibulk(const Buffer& in, RequestView& out);
  Result next_inline(const Buffer& in, RequestView& out);
  Result fail(std::string msg);
  Result check_partial(const Buffer& in);
  void reader_error_to_redis_wording();

  RequestLimits limits_;
  redisReader* reader_ = nullptr;
  uint64_t fed_ = 0;        // stream bytes given to the reader
  uint64_t boundary_ = 0;   // stream offset of the head of the caller's buffer
  std::string error_;
  bool callback_failed_ = false;

  struct ArgPos {
    uint64_t offset;
    uint32_t len;
  };
  std::vector<ArgPos> arg_pos_;          // filled by the reader callbacks
  std::vector<std::string_view> argv_;   // reused for every request
  std::vector<std::string> inline_args_; // owned arguments of an inline request
  Buffer inline_raw_;                    // RESP encoding of an inline request
};

}  // namespace headroom::resp
