#include "resp/request_framer.h"

#include <algorithm>
#include <cstring>

#include "resp/inline_split.h"
#include "resp/reply_writer.h"

namespace headroom::resp {

namespace {
constexpr size_t kMaxHeaderLine = 64 * 1024;  // Redis: PROTO_INLINE_MAX_SIZE

// Redis's string2ll: an optional '-', then digits without leading zeros ("0" alone
// aside), nothing else, within a long long.
bool parse_ll(const char* p, size_t n, int64_t& out) {
  if (n == 0 || n > 20) return false;
  bool negative = false;
  size_t i = 0;
  if (p[0] == '-') {
    negative = true;
    if (++i == n) return false;
  }
  if (p[i] == '0') {
    if (n - i != 1 || negative) return false;
    out = 0;
    return true;
  }
  uint64_t v = 0;
  for (; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    uint64_t d = static_cast<uint64_t>(p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<uint64_t>(INT64_MAX) + 1) return false;
    out = static_cast<int64_t>(0 - v);
  } else {
    if (v > static_cast<uint64_t>(INT64_MAX)) return false;
    out = static_cast<int64_t>(v);
  }
  return true;
}

// The common header: a short run of digits, then "\r\n". Returns the position of
// the '\r' and sets `value`, or 0 when the line is anything else (or incomplete):
// header_end and parse_ll then give the exact outcome.
inline size_t quick_number(const char* p, size_t n, size_t at, int64_t& value) {
  int64_t v = 0;
  size_t i = at;
  const size_t last = std::min(n, at + 18);  // 18 digits cannot overflow
  while (i < last && p[i] >= '0' && p[i] <= '9') v = v * 10 + (p[i++] - '0');
  if (i == at || i + 1 >= n || p[i] != '\r' || (p[at] == '0' && i - at > 1)) return 0;
  value = v;
  return i;
}

// The header line starting at `at`: the position of its '\r' once "\r\n" is there,
// 0 when more bytes are needed, SIZE_MAX when it is too long to be a header.
size_t header_end(const char* p, size_t n, size_t at) {
  const void* cr = std::memchr(p + at, '\r', n - at);
  if (cr == nullptr) return n - at > kMaxHeaderLine ? SIZE_MAX : 0;
  size_t end = static_cast<size_t>(static_cast<const char*>(cr) - p);
  if (end + 1 >= n) return 0;  // the '\n' has not arrived
  return end;
}
}  // namespace

RequestFramer::Result RequestFramer::fail(std::string msg) {
  error_ = std::move(msg);
  return Result::kError;
}

void RequestFramer::reset_progress() {
  pos_ = 0;
  args_expected_ = -1;
  bulk_len_ = -1;
  args_.clear();
}

RequestFramer::Result RequestFramer::next(const Buffer& in, RequestView& out) {
  if (in.empty()) return Result::kNeedMore;
  // A request starting with '*' is RESP; anything else is an inline command.
  if (pos_ == 0 && in.data()[0] != '*') return next_inline(in, out);
  return next_multibulk(in, out);
}

RequestFramer::Result RequestFramer::next_multibulk(const Buffer& in, RequestView& out) {
  const char* p = in.data();
  const size_t n = in.size();
  if (args_expected_ < 0) {
    int64_t count = 0;
    size_t cr = quick_number(p, n, 1, count);
    if (cr == 0) {
      cr = header_end(p, n, 1);
      if (cr == SIZE_MAX) return fail("ERR Protocol error: too big mbulk count string");
      if (cr == 0) return Result::kNeedMore;
      if (!parse_ll(p + 1, cr - 1, count) || count > INT32_MAX)
        return fail("ERR Protocol error: invalid multibulk length");
    }
    pos_ = cr + 2;
    if (count <= 0) {  // "*0", "*-1", "*-10": nothing to run, as in Redis
      out = RequestView{};
      out.consumed = pos_;
      reset_progress();
      return Result::kRequest;
    }
    if (static_cast<uint64_t>(count) > limits_.max_args) return fail("ERR Protocol error: invalid multibulk length");
    args_expected_ = count;
    args_.reserve(static_cast<size_t>(std::min<int64_t>(count, 1024)));
  }
  while (static_cast<int64_t>(args_.size()) < args_expected_) {
    if (bulk_len_ < 0) {
      if (pos_ >= n) break;
      if (p[pos_] != '$') return fail(std::string("ERR Protocol error: expected '$', got '") + p[pos_] + "'");
      int64_t len = 0;
      size_t cr = quick_number(p, n, pos_ + 1, len);
      if (cr == 0) {
        cr = header_end(p, n, pos_ + 1);
        if (cr == SIZE_MAX) return fail("ERR Protocol error: too big bulk count string");
        if (cr == 0) break;
        if (!parse_ll(p + pos_ + 1, cr - pos_ - 1, len) || len < 0)
          return fail("ERR Protocol error: invalid bulk length");
      }
      if (static_cast<uint64_t>(len) > limits_.max_bulk_bytes) return fail("ERR Protocol error: invalid bulk length");
      pos_ = cr + 2;
      bulk_len_ = len;
    }
    size_t need = static_cast<size_t>(bulk_len_) + 2;  // Redis skips the "\r\n" without checking it
    if (n - pos_ < need) break;
    args_.push_back({pos_, static_cast<size_t>(bulk_len_)});
    pos_ += need;
    bulk_len_ = -1;
  }
  if (static_cast<int64_t>(args_.size()) < args_expected_) {
    // Waiting for the rest: what the request holds already, or announces, is bounded.
    uint64_t promised = pos_ + (bulk_len_ > 0 ? static_cast<uint64_t>(bulk_len_) : 0);
    if (n > limits_.max_request_bytes || promised > limits_.max_request_bytes)
      return fail("ERR Protocol error: request larger than max_request_bytes");
    return Result::kNeedMore;
  }
  argv_.resize(args_.size());
  for (size_t i = 0; i < args_.size(); ++i) argv_[i] = std::string_view(p + args_[i].offset, args_[i].len);
  out.argv = argv_;
  out.raw = std::string_view(p, pos_);
  out.consumed = pos_;
  out.is_inline = false;
  reset_progress();
  return Result::kRequest;
}

RequestFramer::Result RequestFramer::next_inline(const Buffer& in, RequestView& out) {
  const char* p = in.data();
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', in.size()));
  if (nl == nullptr) {
    if (in.size() > kMaxHeaderLine) return fail("ERR Protocol error: too big inline request");
    return Result::kNeedMore;
  }
  size_t consumed = static_cast<size_t>(nl - p) + 1;
  std::string_view line(p, consumed - 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!split_inline_args(line, inline_args_)) return fail("ERR Protocol error: unbalanced quotes in request");
  if (inline_args_.size() > limits_.max_args) return fail("ERR Protocol error: invalid multibulk length");
  out = RequestView{};
  out.consumed = consumed;
  out.is_inline = true;
  if (inline_args_.empty()) return Result::kRequest;  // a blank line
  // The RESP encoding to forward; the views point into it, as for a RESP request.
  inline_raw_.clear();
  add_array_header(inline_raw_, static_cast<int64_t>(inline_args_.size()));
  inline_offsets_.clear();
  for (const auto& a : inline_args_) {
    append_line_number(inline_raw_, '$', static_cast<int64_t>(a.size()));
    inline_offsets_.push_back(inline_raw_.size());
    inline_raw_.append(a);
    inline_raw_.append("\r\n", 2);
  }
  argv_.resize(inline_args_.size());
  for (size_t i = 0; i < inline_args_.size(); ++i)
    argv_[i] = std::string_view(inline_raw_.data() + inline_offsets_[i], inline_args_[i].size());
  out.argv = argv_;
  out.raw = inline_raw_.view();
  return Result::kRequest;
}

}  // namespace headroom::resp
