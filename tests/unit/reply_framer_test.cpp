// Reply framing: every RESP2 type, split at every byte boundary; array splitting
// for merges; malformed replies.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "resp/buffer.h"
#include "resp/reply_framer.h"

using headroom::resp::Buffer;
using headroom::resp::ReplyFramer;

namespace {
std::vector<std::string> frame_all(const std::string& input, size_t chunk, bool* error = nullptr) {
  ReplyFramer framer;
  Buffer in;
  std::vector<std::string> out;
  for (size_t pos = 0; pos < input.size(); pos += chunk) {
    size_t n = std::min(chunk, input.size() - pos);
    in.append(input.data() + pos, n);
    for (;;) {
      int64_t len = framer.next(in.data(), in.size());
      if (len < 0) {
        if (error) *error = true;
        return out;
      }
      if (len == 0) break;
      out.emplace_back(in.data(), static_cast<size_t>(len));
      in.consume(static_cast<size_t>(len));
    }
  }
  return out;
}
}  // namespace

TEST_CASE("every RESP2 reply type is framed whole, at every split point") {
  std::vector<std::string> replies = {
      "+OK\r\n", "-ERR wrong type\r\n", ":42\r\n", ":-7\r\n", "$5\r\nhello\r\n", "$0\r\n\r\n", "$-1\r\n",
      "*-1\r\n", "*0\r\n", "*3\r\n$1\r\na\r\n$-1\r\n:3\r\n", "*2\r\n*2\r\n+a\r\n-b\r\n*1\r\n$2\r\n\r\n\r\n",
      "$4\r\n\r\n\r\n\r\n"};
  std::string all;
  for (auto& r : replies) all += r;
  for (size_t chunk = 1; chunk <= all.size(); ++chunk) {
    CAPTURE(chunk);
    auto got = frame_all(all, chunk);
    CHECK(got == replies);
  }
}

TEST_CASE("every RESP3 reply type is framed whole, at every split point") {
  std::vector<std::string> replies = {
      "_\r\n", ",3.14\r\n", ",inf\r\n", "#t\r\n", "#f\r\n", "(3492890328409238509324850943850943825024385\r\n",
      "!21\r\nSYNTAX invalid syntax\r\n", "=15\r\ntxt:Some string\r\n",
      "%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n%1\r\n+a\r\n_\r\n", "~3\r\n+a\r\n:1\r\n,2.5\r\n", "%0\r\n", "~0\r\n",
      ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n",
      "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",  // an attribute, then its reply
      "*2\r\n%1\r\n+k\r\n~1\r\n#t\r\n_\r\n"};
  std::string all;
  for (auto& r : replies) all += r;
  for (size_t chunk = 1; chunk <= all.size(); ++chunk) {
    CAPTURE(chunk);
    auto got = frame_all(all, chunk);
    CHECK(got == replies);
  }
}

TEST_CASE("replies nested deeper than hiredis allows are framed") {
  std::string deep;
  for (int i = 0; i < 20; ++i) deep += "*1\r\n";
  deep += "$1\r\nx\r\n";
  std::string all = deep + ":1\r\n";
  for (size_t chunk = 1; chunk <= all.size(); ++chunk) CHECK(frame_all(all, chunk) == std::vector<std::string>{deep, ":1\r\n"});
}

TEST_CASE("many replies in one read") {
  std::string all;
  std::vector<std::string> expect;
  for (int i = 0; i < 500; ++i) {
    std::string v(static_cast<size_t>(i % 37), 'v');
    std::string reply = "$";  // built step by step: GCC 12 warns falsely (-Wrestrict) on a + chain
    reply += std::to_string(v.size());
    reply += "\r\n";
    reply += v;
    reply += "\r\n";
    expect.push_back(reply);
    all += expect.back();
  }
  CHECK(frame_all(all, 4096) == expect);
  CHECK(frame_all(all, 5) == expect);
}

TEST_CASE("malformed replies are errors") {
  for (std::string bad : {"?what\r\n", "$abc\r\n", "*x\r\n", "$-2\r\n", ":12a\r\n", "+OK\n", "$1\r\nab\r\n"}) {
    bool error = false;
    frame_all(bad, bad.size(), &error);
    CHECK_MESSAGE(error, bad);
  }
}

TEST_CASE("hostile lengths neither overflow nor read past the bytes") {
  ReplyFramer f;
  std::string huge_bulk = "$9223372036854775807\r\nab";
  CHECK(f.next(huge_bulk.data(), huge_bulk.size()) == 0);  // waits for bytes that never come
  ReplyFramer g;
  std::string huge_array = "*99999999999999\r\n";
  CHECK(g.next(huge_array.data(), huge_array.size()) == -1);
  ReplyFramer h;
  std::string nested = "*0\r\n*4294967296\r\n";
  CHECK(h.next(nested.data(), nested.size()) == 4);  // "*0" is a whole reply
}

TEST_CASE("split_array_reply gives each element's raw bytes") {
  std::vector<std::string_view> el;
  REQUIRE(headroom::resp::split_array_reply("*3\r\n$1\r\na\r\n$-1\r\n*1\r\n:1\r\n", el));
  REQUIRE(el.size() == 3);
  CHECK(el[0] == "$1\r\na\r\n");
  CHECK(el[1] == "$-1\r\n");
  CHECK(el[2] == "*1\r\n:1\r\n");
  CHECK(headroom::resp::split_array_reply("*0\r\n", el));
  CHECK(el.empty());
  CHECK_FALSE(headroom::resp::split_array_reply("*-1\r\n", el));
  CHECK_FALSE(headroom::resp::split_array_reply("$1\r\na\r\n", el));
  CHECK_FALSE(headroom::resp::split_array_reply("*2\r\n$1\r\na\r\n", el));  // short
  // and the shared framer still works after a failure
  REQUIRE(headroom::resp::split_array_reply("*1\r\n+OK\r\n", el));
  CHECK(el[0] == "+OK\r\n");
}

TEST_CASE("integer replies") {
  int64_t n = 0;
  CHECK(headroom::resp::parse_integer_reply(":123\r\n", n));
  CHECK(n == 123);
  // Integer replies span all of int64 (INCRBY can reach either end).
  headroom::resp::ReplyFramer f;
  std::string ends = ":-9223372036854775808\r\n";
  CHECK(f.next(ends.data(), ends.size()) == static_cast<int64_t>(ends.size()));
  ends = ":9223372036854775807\r\n";
  CHECK(f.next(ends.data(), ends.size()) == static_cast<int64_t>(ends.size()));
  ends = ":9223372036854775808\r\n";
  CHECK(f.next(ends.data(), ends.size()) == -1);
  CHECK_FALSE(headroom::resp::parse_integer_reply("+123\r\n", n));
}

TEST_CASE("bulk_text and pushes split as arrays") {
  using headroom::resp::bulk_text;
  CHECK(bulk_text("$3\r\nabc\r\n") == "abc");
  CHECK(bulk_text("$0\r\n\r\n").empty());
  CHECK(bulk_text("$-1\r\n").empty());
  CHECK(bulk_text(",1.5\r\n") == "1.5");
  CHECK(bulk_text(":1\r\n").empty());
  std::vector<std::string_view> e;
  REQUIRE(headroom::resp::split_array_reply(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n", e));
  CHECK(e.size() == 3);
  CHECK(bulk_text(e[1]) == "ch");
}
