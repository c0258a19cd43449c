// Replies built in a ReplyArena: every RESP2 type, nested arrays, replies split across
// feeds at every byte, strings above the large-block size, and memory that stops
// growing once replies repeat (and shrinks back after a huge one).
#include <doctest/doctest.h>

#include <string>

#include "balancer/reply_arena.h"

using headroom::balancer::ReplyArena;

namespace {

// One reply's shape as text: what the tests compare.
std::string show(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING: return "$" + std::string(r->str, r->len);
    case REDIS_REPLY_STATUS: return "+" + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR: return "-" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return ":" + std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string s = "[";
      for (size_t i = 0; i < r->elements; ++i) s += (i ? "," : "") + show(r->element[i]);
      return s + "]";
    }
  }
  return "?";
}

// Feeds `input` `chunk` bytes at a time; every complete reply is shown and released.
std::string read_all(ReplyArena& arena, redisReader* reader, const std::string& input, size_t chunk) {
  std::string out;
  for (size_t pos = 0; pos < input.size(); pos += chunk) {
    REQUIRE(redisReaderFeed(reader, input.data() + pos, std::min(chunk, input.size() - pos)) == REDIS_OK);
    for (;;) {
      void* reply = nullptr;
      REQUIRE(redisReaderGetReply(reader, &reply) == REDIS_OK);
      if (reply == nullptr) break;
      out += show(static_cast<redisReply*>(reply)) + ";";
      arena.release();
    }
  }
  return out;
}

const std::string kMixed =
    "+OK\r\n-ERR no\r\n:42\r\n$-1\r\n$5\r\nhello\r\n$0\r\n\r\n*0\r\n*-1\r\n"
    "*3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:del\r\n$3\r\nk:1\r\n"
    "*2\r\n*2\r\n:1\r\n$1\r\na\r\n*1\r\n*1\r\n+deep\r\n";
const std::string kMixedShown =
    "+OK;-ERR no;:42;nil;$hello;$;[];nil;[$message,$__keyevent@0__:del,$k:1];[[:1,$a],[[+deep]]];";

}  // namespace

TEST_CASE("an arena's reader builds every RESP2 type, whole or split at any byte") {
  for (size_t chunk : {kMixed.size(), size_t{1}, size_t{2}, size_t{7}}) {
    ReplyArena arena;
    redisReader* reader = arena.make_reader();
    REQUIRE(reader != nullptr);
    CHECK(read_all(arena, reader, kMixed, chunk) == kMixedShown);
    redisReaderFree(reader);
  }
}

TEST_CASE("strings above the large-block size and long arrays are read whole") {
  ReplyArena arena;
  redisReader* reader = arena.make_reader();
  const std::string big(3 * ReplyArena::kChunkBytes, 'x');
  std::string input = "$" + std::to_string(big.size()) + "\r\n" + big + "\r\n";
  std::string want = "$" + big + ";";
  input += "*3000\r\n";
  want += "[";
  for (int i = 0; i < 3000; ++i) {
    input += "$2\r\nab\r\n";
    want += i ? ",$ab" : "$ab";
  }
  want += "];";
  CHECK(read_all(arena, reader, input, 4096) == want);
  CHECK(arena.chunk_bytes() <= ReplyArena::kKeptChunks * ReplyArena::kChunkBytes);  // given back after the long one
  redisReaderFree(reader);
}

TEST_CASE("the arena stops growing once replies repeat") {
  ReplyArena arena;
  redisReader* reader = arena.make_reader();
  read_all(arena, reader, kMixed, kMixed.size());
  const size_t after_one = arena.chunk_bytes();
  CHECK(after_one > 0);
  for (int i = 0; i < 1000; ++i) read_all(arena, reader, kMixed, kMixed.size());
  CHECK(arena.chunk_bytes() == after_one);
  redisReaderFree(reader);
}

TEST_CASE("a reader freed with a reply half read leaves the arena usable") {
  ReplyArena arena;
  redisReader* reader = arena.make_reader();
  const std::string half = "*3\r\n$7\r\nmessage\r\n$2\r\nab";
  REQUIRE(redisReaderFeed(reader, half.data(), half.size()) == REDIS_OK);
  void* reply = nullptr;
  REQUIRE(redisReaderGetReply(reader, &reply) == REDIS_OK);
  CHECK(reply == nullptr);
  redisReaderFree(reader);
  reader = arena.make_reader();
  CHECK(read_all(arena, reader, kMixed, 3) == kMixedShown);
  redisReaderFree(reader);
}
