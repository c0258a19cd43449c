// Reply framing: finds where each complete reply ends in the bytes a backend sends,
// so a reply can be forwarded as its raw bytes, never decoded.
//
// Why not hiredis's redisReader here, as for requests: hiredis 0.14 refuses replies
// nested deeper than 7 levels (COMMAND DOCS, a script returning nested tables), and
// a framing error on a shared backend connection would fail every client's request
// on it. Framing a reply needs no objects, only counting: this scanner keeps a count
// of items still owed by open arrays, works on the connection's own buffer (no
// copy), resumes where it stopped when more bytes arrive, and has no depth limit.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace headroom::resp {

class ReplyFramer {
 public:
  // Length of the complete reply at the start of `data`; 0 when more bytes are
  // needed (the scan resumes from where it stopped on the next call, with `data`
  // starting at the same reply); -1 when the bytes are not RESP2 or RESP3 (error()
  // says why).
  int64_t next(const char* data, size_t len);

  // Forgets a partly scanned reply (after a reconnect).
  void reset() {
    scanned_ = 0;
    owed_ = 0;
  }

  const std::string& error() const { return error_; }

 private:
  size_t scanned_ = 0;  // bytes of the current reply already walked
  int64_t owed_ = 0;    // items still to read before the reply is complete
  std::string error_;
};

// Splits a complete array reply ("*N\r\n" + N elements; a RESP3 push ">N\r\n" too) into
// the raw bytes of each element. Returns false for anything but a non-null array or a
// push. `out` is cleared first.
bool split_array_reply(std::string_view reply, std::vector<std::string_view>& out);

// A bulk string's bytes ("$3\r\nabc\r\n" -> "abc"), or a RESP3 double's (",1.5\r\n");
// empty for anything else (a null bulk included).
std::string_view bulk_text(std::string_view reply);

// Parses ":<n>\r\n". Returns false for anything else.
bool parse_integer_reply(std::string_view reply, int64_t& out);

}  // namespace headroom::resp
