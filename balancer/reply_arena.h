// The memory a control connection's replies are built in. hiredis's default reply
// objects cost an allocation for every element and another for its string, and as
// many frees, for every reply: a keyevent notification (an array of three strings)
// is eight of each, a bucket of the directory or a page of SCAN hundreds. A
// ReplyArena is plugged into redisReader through its reply-object functions (the
// extension point hiredis offers for this) and hands out reply nodes, element arrays
// and string bytes from chunks it keeps: once the chunks have grown to the
// connection's usual replies, reading a reply allocates nothing.
//
// A reply lives until release(): ControlConn releases each one as its callback
// returns, which is the contract its callbacks already have (a reply is valid during
// its callback only). Strings above kLargeBytes (a DUMP payload, a large value) get
// an allocation of their own, freed at release; chunks beyond kKeptChunks are freed
// too, so one huge reply does not pin its memory for the connection's life.
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <memory>
#include <vector>

namespace headroom::balancer {

class ReplyArena {
 public:
  static constexpr size_t kChunkBytes = 16 << 10;
  static constexpr size_t kLargeBytes = 4 << 10;
  static constexpr size_t kKeptChunks = 8;

  ReplyArena() = default;
  ReplyArena(const ReplyArena&) = delete;
  ReplyArena& operator=(const ReplyArena&) = delete;

  // A reader whose replies are built here (free it with redisReaderFree; the arena
  // must outlive it). nullptr when out of memory, as redisReaderCreate.
  redisReader* make_reader();
  // The reply handed out last is done with: its memory is reused by the next.
  void release();

  // Bytes held in chunks (for tests: it stops growing once replies repeat).
  size_t chunk_bytes() const { return chunks_.size() * kChunkBytes; }

 private:
  static void* create_string(const redisReadTask* task, char* str, size_t len);
  static void* create_array(const redisReadTask* task, int elements);
  static void* create_integer(const redisReadTask* task, long long value);
  static void* create_nil(const redisReadTask* task);
  static void free_object(void*) {}  // everything goes at release()
  static redisReplyObjectFunctions functions_;

  void* take(size_t bytes);  // 8-byte aligned, from the current chunk (or a large block)
  redisReply* node(const redisReadTask* task, int type);

  std::vector<std::unique_ptr<std::byte[]>> chunks_;
  size_t chunk_ = 0;  // the chunk being filled
  size_t used_ = 0;   // bytes used in it
  std::vector<std::unique_ptr<std::byte[]>> large_;  // this reply's blocks above kLargeBytes
};

}  // namespace headroom::balancer
