#include "resp/request_parser.h"

#include <cctype>
#include <charconv>
#include <cstring>

#include "resp/inline_split.h"
#include "resp/reply_writer.h"

namespace headroom::resp {

namespace {
// The reader wants a non-null object from each callback; nothing is ever allocated.
char g_token;
void* token() { return &g_token; }

constexpr size_t kMaxHeaderLine = 64 * 1024;  // Redis: PROTO_INLINE_MAX_SIZE
}  // namespace

// The reader's callbacks. They run inside redisReaderGetReply, before the reader may
// compact its buffer, so `str - r->buf` is a valid position to turn into a stream offset.
struct ParserCallbacks {
  static RequestParser* parser(const redisReadTask* t) {
    return static_cast<RequestParser*>(t->privdata);
  }
  static void* refuse(const redisReadTask* t, char got) {
    auto* p = parser(t);
    p->callback_failed_ = true;
    p->error_ = "ERR Protocol error: expected '$', got '";
    p->error_ += got;
    p->error_ += "'";
    return nullptr;
  }
  static void* create_string(const redisReadTask* t, char* str, size_t len) {
    if (t->type != REDIS_REPLY_STRING) return refuse(t, t->type == REDIS_REPLY_ERROR ? '-' : '+');
    auto* p = parser(t);
    const redisReader* r = p->reader_;
    uint64_t buf_base = p->fed_ - r->len;  // stream offset of r->buf[0]
    p->arg_pos_.push_back({buf_base + static_cast<uint64_t>(str - r->buf), static_cast<uint32_t>(len)});
    return token();
  }
  static void* create_array(const redisReadTask* t, int elements) {
    auto* p = parser(t);
    if (t->parent != nullptr) return refuse(t, '*');
    if (static_cast<uint32_t>(elements) > p->limits_.max_args) {
      p->callback_failed_ = true;
      p->error_ = "ERR Protocol error: invalid multibulk length";
      return nullptr;
    }
    p->arg_pos_.clear();
    p->arg_pos_.reserve(static_cast<size_t>(elements));
    return token();
  }
  static void* create_integer(const redisReadTask* t, long long) { return refuse(t, ':'); }
  static void* create_nil(const redisReadTask* t) {
    if (t->parent == nullptr) {  // "*-1\r\n": Redis ignores an empty multibulk
      parser(t)->arg_pos_.clear();
      return token();
    }
    auto* p = parser(t);
    p->callback_failed_ = true;
    p->error_ = "ERR Protocol error: invalid bulk length";
    return nullptr;
  }
  static void free_object(void*) {}
};

namespace {
redisReplyObjectFunctions g_request_functions = {
    ParserCallbacks::create_string, ParserCallbacks::create_array, ParserCallbacks::create_integer,
    ParserCallbacks::create_nil, ParserCallbacks::free_object};
}  // namespace

RequestParser::RequestParser(const RequestLimits& limits) : limits_(limits) {
  reader_ = redisReaderCreateWithFunctions(&g_request_functions);
  reader_->privdata = this;
}

RequestParser::~RequestParser() { redisReaderFree(reader_); }

void RequestParser::feed(const char* p, size_t n) {
  if (n == 0) return;
  redisReaderFeed(reader_, p, n);
  fed_ += n;
}

RequestParser::Result RequestParser::fail(std::string msg) {
  error_ = std::move(msg);
  return Result::kError;
}

RequestParser::Result RequestParser::next(const Buffer& in, RequestView& out) {
  if (in.empty()) return Result::kNeedMore;
  // A request starting with '*' is RESP; anything else is an inline command. Only
  // decide at a request boundary (the reader holds no partial request).
  if (reader_->ridx == -1 && in.data()[0] != '*') return next_inline(in, out);
  return next_multibulk(in, out);
}

RequestParser::Result RequestParser::next_multibulk(const Buffer& in, RequestView& out) {
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      if (!callback_failed_) reader_error_to_redis_wording();
      return Result::kError;
    }
    if (reply == nullptr) return check_partial(in);

    // Where the reader stands now, in stream offsets: everything before is consumed.
    uint64_t end = fed_ - (reader_->len - reader_->pos);
    size_t consumed = static_cast<size_t>(end - boundary_);
    if (arg_pos_.empty()) {  // "*0\r\n" or "*-1\r\n": nothing to run, as in Redis
      boundary_ = end;
      out = RequestView{};
      out.consumed = consumed;
      return Result::kRequest;  // empty argv: the caller consumes and moves on
    }
    argv_.resize(arg_pos_.size());
    for (size_t i = 0; i < arg_pos_.size(); ++i)
      argv_[i] = std::string_view(in.data() + (arg_pos_[i].offset - boundary_), arg_pos_[i].len);
    out.argv = argv_;
    out.raw = std::string_view(in.data(), consumed);
    out.consumed = consumed;
    out.is_inline = false;
    boundary_ = end;
    return Result::kRequest;
  }
}

// The reader is waiting for more bytes. Enforce the limits Redis enforces before the
// bytes arrive, so a "$1000000000" header cannot make us buffer a gigabyte.
RequestParser::Result RequestParser::check_partial(const Buffer& in) {
  if (in.size() > limits_.max_request_bytes)
    return fail("ERR Protocol error: request larger than max_request_bytes");
  const char* p = reader_->buf + reader_->pos;
  size_t avail = reader_->len - reader_->pos;
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', avail));
  if (nl == nullptr) {
    if (avail > kMaxHeaderLine)
      return fail(reader_->ridx <= 0 ? "ERR Protocol error: too big mbulk count string"
                                     : "ERR Protocol error: too big bulk count string");
    return Result::kNeedMore;
  }
  // Inside a request, the next item is a bulk header: check its length now. The
  // reader may already have consumed the '$' type byte of the item it waits for.
  if (reader_->ridx > 0 && avail > 0) {
    const char* digits = nullptr;
    if (reader_->rstack[reader_->ridx].type == REDIS_REPLY_STRING) digits = p;
    else if (p[0] == '$') digits = p + 1;
    if (digits != nullptr) {
      long long len = 0;
      const char* end = nl;
      if (end > digits && end[-1] == '\r') --end;
      auto r = std::from_chars(digits, end, len);
      if (r.ec == std::errc() && r.ptr == end && len > 0 &&
          static_cast<unsigned long long>(len) > limits_.max_bulk_bytes)
        return fail("ERR Protocol error: invalid bulk length");
    }
  }
  return Result::kNeedMore;
}

void RequestParser::reader_error_to_redis_wording() {
  std::string lowered(reader_->errstr);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view e = lowered;
  if (e.find("multi-bulk length") != std::string_view::npos) {
    error_ = "ERR Protocol error: invalid multibulk length";
  } else if (e.find("bulk string length") != std::string_view::npos) {
    error_ = "ERR Protocol error: invalid bulk length";
  } else if (e.find("reply type byte") != std::string_view::npos) {
    // hiredis: Protocol error, got "X" as reply type byte
    char got = '?';
    std::string_view orig = reader_->errstr;
    if (auto q = orig.find('"'); q != std::string_view::npos && q + 1 < orig.size()) got = orig[q + 1];
    error_ = "ERR Protocol error: expected '$', got '";
    error_ += got;
    error_ += "'";
  } else {
    error_ = "ERR Protocol error: ";
    error_ += reader_->errstr;
  }
}

RequestParser::Result RequestParser::next_inline(const Buffer& in, RequestView& out) {
  const char* p = in.data();
  const char* nl = static_cast<const char*>(std::memchr(p, '\n', in.size()));
  if (nl == nullptr) {
    if (in.size() > kMaxHeaderLine) return fail("ERR Protocol error: too big inline request");
    return Result::kNeedMore;
  }
  size_t consumed = static_cast<size_t>(nl - p) + 1;
  std::string_view line(p, consumed - 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!split_inline_args(line, inline_args_))
    return fail("ERR Protocol error: unbalanced quotes in request");
  if (inline_args_.size() > limits_.max_args) return fail("ERR Protocol error: invalid multibulk length");

  // Keep the reader in step: these bytes were fed to it but are not RESP.
  reader_->pos += consumed;
  boundary_ += consumed;

  argv_.assign(inline_args_.begin(), inline_args_.end());
  inline_raw_.clear();
  if (!argv_.empty()) add_command(inline_raw_, argv_);
  out.argv = argv_;
  out.raw = inline_raw_.view();
  out.consumed = consumed;
  out.is_inline = true;
  return Result::kRequest;
}

}  // namespace headroom::resp
