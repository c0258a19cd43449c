#include "resp/reply_framer.h"

#include <charconv>
#include <cstring>

namespace headroom::resp {

ReplyFramer::ReplyFramer() { reader_ = redisReaderCreateWithFunctions(nullptr); }

ReplyFramer::~ReplyFramer() { redisReaderFree(reader_); }

void ReplyFramer::feed(const char* p, size_t n) {
  if (n == 0) return;
  redisReaderFeed(reader_, p, n);
  fed_ += n;
}

int64_t ReplyFramer::next() {
  void* reply = nullptr;
  if (redisReaderGetReply(reader_, &reply) != REDIS_OK) return -1;
  if (reply == nullptr) return 0;
  uint64_t end = fed_ - (reader_->len - reader_->pos);
  int64_t len = static_cast<int64_t>(end - framed_);
  framed_ = end;
  return len;
}

void ReplyFramer::reset() {
  redisReaderFree(reader_);
  reader_ = redisReaderCreateWithFunctions(nullptr);
  fed_ = framed_ = 0;
}

std::string ReplyFramer::error() const { return reader_->errstr; }

bool split_array_reply(std::string_view reply, std::vector<std::string_view>& out) {
  out.clear();
  if (reply.size() < 4 || reply[0] != '*') return false;
  size_t nl = reply.find('\n');
  if (nl == std::string_view::npos) return false;
  long long n = 0;
  auto r = std::from_chars(reply.data() + 1, reply.data() + nl - 1, n);
  if (r.ec != std::errc() || n < 0) return false;
  // The elements are framed like top-level replies, by a framer kept for this purpose.
  // After a successful split the framer has consumed all it was fed, so it is
  // reused as is; after a failure it is reset.
  thread_local ReplyFramer framer;
  std::string_view body = reply.substr(nl + 1);
  framer.feed(body.data(), body.size());
  size_t pos = 0;
  out.reserve(static_cast<size_t>(n));
  for (long long i = 0; i < n; ++i) {
    int64_t len = framer.next();
    if (len <= 0) {
      framer.reset();
      return false;
    }
    out.push_back(body.substr(pos, static_cast<size_t>(len)));
    pos += static_cast<size_t>(len);
  }
  if (pos != body.size()) {
    framer.reset();
    return false;
  }
  return true;
}

bool parse_integer_reply(std::string_view reply, int64_t& out) {
  if (reply.size() < 4 || reply[0] != ':') return false;
  auto r = std::from_chars(reply.data() + 1, reply.data() + reply.size() - 2, out);
  return r.ec == std::errc() && r.ptr == reply.data() + reply.size() - 2;
}

}  // namespace headroom::resp
