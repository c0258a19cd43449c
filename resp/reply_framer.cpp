#include "resp/reply_framer.h"

#include <charconv>
#include <cstring>

namespace headroom::resp {

namespace {
// More elements than any Redis reply can hold (and small enough that the count of
// items owed never overflows).
constexpr int64_t kMaxArrayLength = int64_t{1} << 32;

bool parse_len(const char* b, const char* e, int64_t& out) {
  auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e;
}
}  // namespace

int64_t ReplyFramer::next(const char* data, size_t len) {
  if (owed_ == 0) owed_ = 1;  // a new reply: one item owed
  while (scanned_ < len) {
    const char* p = data + scanned_;
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', len - scanned_));
    if (nl == nullptr) return 0;
    if (nl == p || nl[-1] != '\r') {
      error_ = "line not terminated by CRLF";
      return -1;
    }
    size_t line_end = static_cast<size_t>(nl - data) + 1;
    const char* body = p + 1;
    const char* body_end = nl - 1;
    int64_t n = 0;
    switch (*p) {
      case '+':
      case '-':
        scanned_ = line_end;
        break;
      case ':':
        if (!parse_len(body, body_end, n)) {
          error_ = "bad integer";
          return -1;
        }
        scanned_ = line_end;
        break;
      case '$':
        if (!parse_len(body, body_end, n) || n < -1) {
          error_ = "bad bulk length";
          return -1;
        }
        if (n >= 0) {
          // compared without overflow: n may be any 63-bit number a broken peer sends
          if (static_cast<uint64_t>(n) + 2 > len - line_end) return 0;  // header read again later
          size_t end = line_end + static_cast<size_t>(n) + 2;
          if (data[end - 2] != '\r' || data[end - 1] != '\n') {
            error_ = "bulk string not terminated by CRLF";
            return -1;
          }
          line_end = end;
        }
        scanned_ = line_end;
        break;
      case '*':
        if (!parse_len(body, body_end, n) || n < -1 || n > kMaxArrayLength) {
          error_ = "bad array length";
          return -1;
        }
        scanned_ = line_end;
        if (n > 0) owed_ += n;  // cannot overflow: kMaxArrayLength bounds each step
        break;
      default:
        error_ = std::string("unknown reply type byte '") + *p + "'";
        return -1;
    }
    if (--owed_ == 0) {
      int64_t total = static_cast<int64_t>(scanned_);
      scanned_ = 0;
      return total;
    }
  }
  return 0;
}

bool split_array_reply(std::string_view reply, std::vector<std::string_view>& out) {
  out.clear();
  if (reply.size() < 4 || reply[0] != '*') return false;
  size_t nl = reply.find('\n');
  if (nl == std::string_view::npos || nl < 2) return false;
  int64_t n = 0;
  if (!parse_len(reply.data() + 1, reply.data() + nl - 1, n) || n < 0) return false;
  out.reserve(static_cast<size_t>(n));
  ReplyFramer framer;
  size_t pos = nl + 1;
  for (int64_t i = 0; i < n; ++i) {
    int64_t len = framer.next(reply.data() + pos, reply.size() - pos);
    if (len <= 0) return false;
    out.push_back(reply.substr(pos, static_cast<size_t>(len)));
    pos += static_cast<size_t>(len);
  }
  return pos == reply.size();
}

bool parse_integer_reply(std::string_view reply, int64_t& out) {
  if (reply.size() < 4 || reply[0] != ':') return false;
  return parse_len(reply.data() + 1, reply.data() + reply.size() - 2, out);
}

}  // namespace headroom::resp
