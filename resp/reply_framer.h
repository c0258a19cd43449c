// Reply framing: finds where each complete reply ends in the bytes a backend sends,
// so a reply can be forwarded as its raw bytes. hiredis's redisReader validates and
// frames (with no object functions it builds nothing); we keep our own copy of the
// bytes in the connection's input Buffer and measure each reply as the difference of
// the reader's stream position before and after it.
#pragma once

#include <hiredis/read.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace headroom::resp {

class ReplyFramer {
 public:
  ReplyFramer();
  ~ReplyFramer();
  ReplyFramer(const ReplyFramer&) = delete;
  ReplyFramer& operator=(const ReplyFramer&) = delete;

  // Tells the framer about bytes just appended to the connection's input buffer.
  void feed(const char* p, size_t n);

  // Length of the next complete reply at the head of the unconsumed bytes; 0 when it
  // is not complete yet; -1 on a protocol error (error() says what).
  int64_t next();

  // Forgets everything (after a reconnect).
  void reset();

  std::string error() const;

 private:
  redisReader* reader_ = nullptr;
  uint64_t fed_ = 0;
  uint64_t framed_ = 0;  // stream offset of the end of the last framed reply
};

// Splits a complete array reply ("*N\r\n" + N elements) into the raw bytes of each
// element. Returns false for anything but a non-null array. `out` is cleared first.
bool split_array_reply(std::string_view reply, std::vector<std::string_view>& out);

// Parses ":<n>\r\n". Returns false for anything else.
bool parse_integer_reply(std::string_view reply, int64_t& out);

}  // namespace headroom::resp
