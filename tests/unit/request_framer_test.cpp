// Request framing: RESP arrays and inline commands, every split point, and the
// protocol errors Redis gives for malformed input.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "resp/request_framer.h"

using headroom::resp::Buffer;
using headroom::resp::RequestFramer;
using headroom::resp::RequestView;

namespace {

struct Parsed {
  std::vector<std::vector<std::string>> requests;
  std::vector<std::string> raws;
  std::string error;
};

// Feeds `input` in chunks of at most `chunk` bytes, collecting every request.
Parsed parse_all(const std::string& input, size_t chunk, headroom::resp::RequestLimits limits = {}) {
  RequestFramer framer(limits);
  Buffer in;
  Parsed out;
  for (size_t pos = 0; pos < input.size(); pos += chunk) {
    size_t n = std::min(chunk, input.size() - pos);
    char* w = in.writable(n);
    std::memcpy(w, input.data() + pos, n);
    in.commit(n);
    for (;;) {
      RequestView v;
      auto r = framer.next(in, v);
      if (r == RequestFramer::Result::kNeedMore) break;
      if (r == RequestFramer::Result::kError) {
        out.error = framer.error();
        return out;
      }
      if (!v.argv.empty()) {
        out.requests.emplace_back(v.argv.begin(), v.argv.end());
        out.raws.emplace_back(v.raw);
      }
      in.consume(v.consumed);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("RESP arrays of bulk strings, split at every byte boundary") {
  std::string input =
      "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
      "*1\r\n$4\r\nPING\r\n"
      "*2\r\n$4\r\nECHO\r\n$5\r\na\r\nb";
  input.push_back('\0');  // binary-safe: a NUL inside an argument
  input += "\r\n";
  for (size_t chunk = 1; chunk <= input.size(); ++chunk) {
    CAPTURE(chunk);
    Parsed p = parse_all(input, chunk);
    REQUIRE(p.error.empty());
    REQUIRE(p.requests.size() == 4);
    CHECK(p.requests[0] == std::vector<std::string>{"GET", "foo"});
    CHECK(p.requests[1] == std::vector<std::string>{"SET", "k", ""});
    CHECK(p.requests[2] == std::vector<std::string>{"PING"});
    CHECK(p.requests[3][1] == std::string("a\r\nb\0", 5));
    CHECK(p.raws[0] == "*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n");
  }
}

TEST_CASE("views stay right over many requests per read, and when the buffer moves") {
  // The input buffer grows (and moves) while a request is half framed: progress is
  // kept as offsets from its head.
  std::string input;
  for (int i = 0; i < 200; ++i) input += "*2\r\n$3\r\nGET\r\n$6\r\nkey" + std::to_string(100 + i) + "\r\n";
  for (size_t chunk : {size_t(7), size_t(1000), input.size()}) {
    Parsed p = parse_all(input, chunk);
    REQUIRE(p.requests.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(p.requests[i][1] == "key" + std::to_string(100 + i));
  }
}

TEST_CASE("inline commands, as typed into nc") {
  std::string input = "PING\r\nSET a \"hello world\"\r\nGET 'it''s'\n\r\nECHO \"\\x41\\n\"\r\n*1\r\n$4\r\nPING\r\n";
  for (size_t chunk = 1; chunk <= input.size(); ++chunk) {
    CAPTURE(chunk);
    Parsed p = parse_all(input, chunk);
    // 'it''s' is an unbalanced-quote error in Redis's rules (a closing quote must be followed by a space)
    CHECK(p.error == "ERR Protocol error: unbalanced quotes in request");
    REQUIRE(p.requests.size() == 2);
    CHECK(p.requests[0] == std::vector<std::string>{"PING"});
    CHECK(p.requests[1] == std::vector<std::string>{"SET", "a", "hello world"});
    CHECK(p.raws[1] == "*3\r\n$3\r\nSET\r\n$1\r\na\r\n$11\r\nhello world\r\n");
  }
  Parsed q = parse_all("ECHO \"\\x41\\n\"\r\n\r\n*1\r\n$4\r\nPING\r\nGET x\n", 3);
  REQUIRE(q.error.empty());
  REQUIRE(q.requests.size() == 3);
  CHECK(q.requests[0][1] == "A\n");
  CHECK(q.requests[1] == std::vector<std::string>{"PING"});
  CHECK(q.requests[2] == std::vector<std::string>{"GET", "x"});
}

TEST_CASE("empty and negative multibulk requests are skipped, as Redis does") {
  Parsed p = parse_all("*0\r\n*-1\r\n*-10\r\n*1\r\n$4\r\nPING\r\n", 1);
  REQUIRE(p.error.empty());
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0] == std::vector<std::string>{"PING"});
}

TEST_CASE("a large argument arriving in many reads is framed once, in place") {
  std::string value(300000, 'v');
  std::string input = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300000\r\n" + value + "\r\n*1\r\n$4\r\nPING\r\n";
  Parsed p = parse_all(input, 4096);
  REQUIRE(p.error.empty());
  REQUIRE(p.requests.size() == 2);
  CHECK(p.requests[0][2] == value);
  CHECK(p.raws[0].size() == input.size() - 14);
}

TEST_CASE("malformed requests get Redis's protocol errors") {
  struct Case {
    std::string input;
    std::string error;
  };
  headroom::resp::RequestLimits small;
  small.max_bulk_bytes = 1000;
  small.max_args = 10;
  std::vector<Case> cases = {
      {"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"},
      {"*1\r\n+OK\r\n", "ERR Protocol error: expected '$', got '+'"},
      {"*1\r\n-ERR\r\n", "ERR Protocol error: expected '$', got '-'"},
      {"*1\r\n*1\r\n$1\r\na\r\n", "ERR Protocol error: expected '$', got '*'"},
      {"*1\r\nX\r\n", "ERR Protocol error: expected '$', got 'X'"},
      {"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"},
      {"*abc\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*11\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*1\r\n$1000000000\r\n", "ERR Protocol error: invalid bulk length"},
      {"PING \"unterminated\r\n", "ERR Protocol error: unbalanced quotes in request"},
      {std::string(70000, 'A'), "ERR Protocol error: too big inline request"},
      {"*" + std::string(70000, '1'), "ERR Protocol error: too big mbulk count string"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input.substr(0, 40));
    for (size_t chunk : {size_t(1), size_t(3), c.input.size()}) {
      if (c.input.size() > 1000 && chunk < 1000) continue;
      Parsed p = parse_all(c.input, chunk, small);
      CHECK(p.error == c.error);
    }
  }
}

TEST_CASE("request size limit") {
  headroom::resp::RequestLimits limits;
  limits.max_request_bytes = 100;
  Parsed p = parse_all("*2\r\n$3\r\nSET\r\n$500\r\n" + std::string(200, 'x'), 1000, limits);
  CHECK(p.error == "ERR Protocol error: request larger than max_request_bytes");
}
