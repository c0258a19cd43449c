#include "balancer/reply_arena.h"

#include <cstring>
#include <new>

namespace headroom::balancer {

namespace {
ReplyArena* arena_of(const redisReadTask* task) { return static_cast<ReplyArena*>(task->privdata); }
}  // namespace

redisReplyObjectFunctions ReplyArena::functions_ = {&create_string, &create_array, &create_integer, &create_nil,
                                                    &free_object};

redisReader* ReplyArena::make_reader() {
  redisReader* r = redisReaderCreateWithFunctions(&functions_);
  // hiredis hands the reader's privdata to every task it reads (nested ones too).
  if (r != nullptr) r->privdata = this;
  release();  // a reply left half read by a reader freed before is gone with it
  return r;
}

void ReplyArena::release() {
  large_.clear();
  if (chunks_.size() > kKeptChunks) chunks_.resize(kKeptChunks);
  chunk_ = 0;
  used_ = 0;
}

void* ReplyArena::take(size_t bytes) {
  bytes = (bytes + 7) & ~size_t{7};
  if (bytes > kLargeBytes) {
    large_.push_back(std::make_unique_for_overwrite<std::byte[]>(bytes));
    return large_.back().get();
  }
  if (chunk_ < chunks_.size() && used_ + bytes > kChunkBytes) {
    ++chunk_;
    used_ = 0;
  }
  if (chunk_ == chunks_.size()) chunks_.push_back(std::make_unique_for_overwrite<std::byte[]>(kChunkBytes));
  void* p = chunks_[chunk_].get() + used_;
  used_ += bytes;
  return p;
}

// A reply node, linked into its parent array as hiredis's own functions do.
redisReply* ReplyArena::node(const redisReadTask* task, int type) {
  auto* r = new (take(sizeof(redisReply))) redisReply{};
  r->type = type;
  if (task->parent != nullptr) {
    auto* parent = static_cast<redisReply*>(task->parent->obj);
    parent->element[task->idx] = r;
  }
  return r;
}

void* ReplyArena::create_string(const redisReadTask* task, char* str, size_t len) {
  ReplyArena* a = arena_of(task);
  redisReply* r = a->node(task, task->type);
  r->str = static_cast<char*>(a->take(len + 1));
  std::memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return r;
}

void* ReplyArena::create_array(const redisReadTask* task, int elements) {
  ReplyArena* a = arena_of(task);
  redisReply* r = a->node(task, REDIS_REPLY_ARRAY);
  r->elements = static_cast<size_t>(elements);
  if (elements > 0) {
    r->element = static_cast<redisReply**>(a->take(sizeof(redisReply*) * static_cast<size_t>(elements)));
    std::memset(r->element, 0, sizeof(redisReply*) * static_cast<size_t>(elements));
  }
  return r;
}

void* ReplyArena::create_integer(const redisReadTask* task, long long value) {
  redisReply* r = arena_of(task)->node(task, REDIS_REPLY_INTEGER);
  r->integer = value;
  return r;
}

void* ReplyArena::create_nil(const redisReadTask* task) { return arena_of(task)->node(task, REDIS_REPLY_NIL); }

}  // namespace headroom::balancer
