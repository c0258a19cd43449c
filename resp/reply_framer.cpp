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

// The number that starts at `q` and ends its line ("-12\r\n"), scanned in one pass
// (headers are read on every reply: no memchr, no from_chars). 1: `v` is set and
// `line_end` is just past the "\n"; 0: the line is not all here yet; -1: malformed.
int scan_number(const char* q, const char* end, int64_t& v, const char*& line_end) {
  bool negative = q < end && *q == '-';
  if (negative) ++q;
  const char* digits = q;
  uint64_t u = 0;
  while (q < end && *q >= '0' && *q <= '9') {
    if (q - digits == 19) return -1;  // more digits than an int64 holds
    u = u * 10 + static_cast<uint64_t>(*q - '0');
    ++q;
  }
  if (q == end) return 0;
  const uint64_t limit = static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0);  // INT64_MIN is an integer reply too
  if (*q != '\r' || q == digits || u > limit) return -1;
  if (q + 1 == end) return 0;
  if (q[1] != '\n') return -1;
  v = negative ? static_cast<int64_t>(0 - u) : static_cast<int64_t>(u);
  line_end = q + 2;
  return 1;
}
}  // namespace

int64_t ReplyFramer::next(const char* data, size_t len) {
  if (owed_ == 0) owed_ = 1;  // a new reply: one item owed
  const char* const end = data + len;
  while (scanned_ < len) {
    const char* p = data + scanned_;
    const char* after = nullptr;  // just past this item's header line
    int64_t n = 0;
    switch (*p) {
      case '+':
      case '-':
      case '_':    // RESP3 null
      case ',':    // RESP3 double
      case '#':    // RESP3 boolean
      case '(': {  // RESP3 big number
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', len - scanned_));
        if (nl == nullptr) return 0;
        if (nl == p || nl[-1] != '\r') {
          error_ = "line not terminated by CRLF";
          return -1;
        }
        scanned_ = static_cast<size_t>(nl - data) + 1;
        break;
      }
      case ':': {
        int r = scan_number(p + 1, end, n, after);
        if (r <= 0) {
          if (r == 0) return 0;
          error_ = "bad integer";
          return -1;
        }
        scanned_ = static_cast<size_t>(after - data);
        break;
      }
      case '$':
      case '!':    // RESP3 blob error
      case '=': {  // RESP3 verbatim string
        int r = scan_number(p + 1, end, n, after);
        if (r == 0) return 0;
        if (r < 0 || n < -1) {
          error_ = "bad bulk length";
          return -1;
        }
        size_t line_end = static_cast<size_t>(after - data);
        if (n >= 0) {
          // compared without overflow: n may be any 63-bit number a broken peer sends
          if (static_cast<uint64_t>(n) + 2 > len - line_end) return 0;  // header read again later
          size_t stop = line_end + static_cast<size_t>(n) + 2;
          if (data[stop - 2] != '\r' || data[stop - 1] != '\n') {
            error_ = "bulk string not terminated by CRLF";
            return -1;
          }
          line_end = stop;
        }
        scanned_ = line_end;
        break;
      }
      case '*':
      case '~':    // RESP3 set
      case '>':    // RESP3 push
      case '%':    // RESP3 map: n pairs
      case '|': {  // RESP3 attribute: n pairs, then the reply they describe
        int r = scan_number(p + 1, end, n, after);
        if (r == 0) return 0;
        if (r < 0 || n < -1 || n > kMaxArrayLength) {
          error_ = "bad aggregate length";
          return -1;
        }
        scanned_ = static_cast<size_t>(after - data);
        const bool pairs = *p == '%' || *p == '|';
        if (n > 0) owed_ += pairs ? 2 * n : n;  // cannot overflow: kMaxArrayLength bounds each step
        if (*p == '|') ++owed_;  // an attribute is not the item: the item follows it
        break;
      }
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

std::string_view bulk_text(std::string_view r) {
  if (r.size() >= 3 && r[0] == ',') return r.substr(1, r.size() - 3);
  if (r.size() < 5 || r[0] != '$' || r[1] == '-') return {};
  size_t nl = r.find('\n');
  return nl == std::string_view::npos ? std::string_view() : r.substr(nl + 1, r.size() - nl - 3);
}

bool split_array_reply(std::string_view reply, std::vector<std::string_view>& out) {
  out.clear();
  if (reply.size() < 4 || (reply[0] != '*' && reply[0] != '>')) return false;
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
