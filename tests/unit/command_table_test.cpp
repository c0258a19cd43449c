// The command table: lookup (case-insensitive, subcommands), arity, key positions
// resolved from Redis 7 key specs for the commands whose keys are hardest to find,
// may-create marks, and the routing the design names.
#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "resp/command_table.h"

using namespace headroom::resp;

namespace {

// An argv whose views point into its own strings (so it is never copied).
struct Argv {
  std::vector<std::string> store;
  std::vector<std::string_view> views;
  Argv(std::initializer_list<std::string> args) : Argv(std::vector<std::string>(args)) {}
  explicit Argv(std::vector<std::string> args) : store(std::move(args)) {
    for (auto& s : store) views.emplace_back(s);
  }
  Argv(const Argv&) = delete;
  Argv& operator=(const Argv&) = delete;
  std::span<const std::string_view> span() const { return views; }
};

constexpr int kInvalid = -1;  // resolve_keys said the arguments cannot hold valid keys

// The argv positions of the keys, or {kInvalid} when resolve_keys refuses the arguments.
std::vector<int> keys_of(const Argv& argv) {
  const CommandInfo* cmd = lookup_command(argv.span());
  REQUIRE(cmd != nullptr);
  std::vector<KeyRef> refs;
  if (!resolve_keys(*cmd, argv.span(), refs)) return {kInvalid};
  std::vector<int> out;
  for (auto r : refs) out.push_back(static_cast<int>(r.argv_index));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

TEST_CASE("lookup is case-insensitive and finds subcommands") {
  struct Case {
    Argv argv;
    const char* row;  // nullptr: not found
    bool unknown_sub;
  };
  const Case cases[] = {
      {{"gEt", "k"}, "get", false},
      {{"GET", "k"}, "get", false},
      {{"OBJECT", "Encoding", "k"}, "object|encoding", false},
      {{"client", "SETNAME", "x"}, "client|setname", false},
      {{"Command"}, "command", false},                     // a container alone: its own row
      {{"command", "count"}, "command|count", false},
      {{"object"}, "object", false},                       // ... for Redis's arity error
      {{"object", "nope", "k"}, nullptr, true},
      {{"object", std::string(100, 'x'), "k"}, nullptr, true},  // too long for any row
      {{"object", "encoding|x", "k"}, nullptr, true},
      {{"frobnicate"}, nullptr, false},
      {{std::string(200, 'a')}, nullptr, false},
      {{""}, nullptr, false},
      {{"object|encoding", "k"}, nullptr, false},  // '|' joins rows' names only, as in Redis
      {{"get\r\n"}, nullptr, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.argv.store[0]);
    bool unknown_sub = !c.unknown_sub;  // must be overwritten either way
    const CommandInfo* got = lookup_command(c.argv.span(), &unknown_sub);
    if (c.row == nullptr) {
      CHECK(got == nullptr);
    } else {
      REQUIRE(got != nullptr);
      CHECK(got->name == c.row);
    }
    CHECK(unknown_sub == c.unknown_sub);
  }
  Argv get{"get", "k"};
  CHECK(lookup_command(get.span()) != nullptr);  // the out-parameter is optional
}

TEST_CASE("every row is found by its own name, in any case") {
  for (const CommandInfo& row : all_commands()) {
    CAPTURE(row.name);
    auto bar = row.name.find('|');
    std::vector<std::string> args{upper(row.name.substr(0, bar))};
    if (bar != std::string_view::npos) args.push_back(upper(row.name.substr(bar + 1)));
    Argv argv(std::move(args));
    CHECK(lookup_command(argv.span()) == &row);
    for (char c : row.name) CHECK_FALSE(std::isupper(static_cast<unsigned char>(c)));
  }
}

TEST_CASE("arity") {
  struct Case {
    const char* cmd;
    size_t argc;
    bool ok;
  };
  const Case cases[] = {
      {"get", 2, true},     {"get", 1, false},    {"get", 3, false},      {"mget", 2, true},
      {"mget", 200, true},  {"mget", 1, false},   {"object", 1, false},   {"object", 2, true},
      {"ping", 1, true},    {"ping", 2, true},    {"set", 2, false},      {"set", 3, true},
      {"eval", 3, true},    {"eval", 2, false},   {"xreadgroup", 6, false}, {"xreadgroup", 7, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.cmd);
    CAPTURE(c.argc);
    Argv argv{c.cmd};
    const CommandInfo* row = lookup_command(argv.span());
    REQUIRE(row != nullptr);
    CHECK(arity_ok(*row, c.argc) == c.ok);
  }
}

TEST_CASE("key positions") {
  struct Case {
    Argv argv;
    std::vector<int> keys;
  };
  const Case cases[] = {
      {{"GET", "k"}, {1}},
      {{"MGET", "a", "b", "c"}, {1, 2, 3}},
      {{"MSET", "a", "1", "b", "2"}, {1, 3}},
      {{"DEL", "a", "b"}, {1, 2}},
      {{"RENAME", "a", "b"}, {1, 2}},
      {{"OBJECT", "ENCODING", "k"}, {2}},
      {{"SMISMEMBER", "s", "a", "b"}, {1}},
      // EVAL script numkeys key... arg...
      {{"EVAL", "return 1", "0"}, {}},
      {{"EVAL", "return 1", "0", "x", "y"}, {}},
      {{"EVAL", "return 1", "2", "a", "b", "x"}, {3, 4}},
      {{"EVAL", "return 1", "2", "a", "b"}, {3, 4}},
      {{"EVAL", "return 1", "3", "a"}, {kInvalid}},   // more keys than arguments
      {{"EVAL", "return 1", "-1", "a"}, {kInvalid}},  // negative
      {{"EVAL", "return 1", "x", "a"}, {kInvalid}},   // not a number
      {{"EVAL", "return 1", "01", "a"}, {kInvalid}},  // Redis's integers have no leading zeros
      {{"EVAL", "return 1", "+1", "a"}, {kInvalid}},
      {{"EVAL", "return 1", "99999999999999999999", "a"}, {kInvalid}},
      {{"FCALL", "f", "1", "k"}, {3}},
      // ZUNIONSTORE dest numkeys key... [WEIGHTS ...]
      {{"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}, {1, 3, 4}},
      {{"ZUNIONSTORE", "d", "3", "a", "b"}, {kInvalid}},
      {{"ZUNION", "2", "a", "b", "WITHSCORES"}, {2, 3}},
      {{"SINTERCARD", "2", "a", "b", "LIMIT", "5"}, {2, 3}},
      // XREAD [COUNT n] [BLOCK ms] STREAMS key... id...
      {{"XREAD", "STREAMS", "s1", "0"}, {2}},
      {{"XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"}, {4, 5}},
      {{"XREAD", "BLOCK", "0", "COUNT", "1", "streams", "s1", "$"}, {6}},
      {{"XREAD", "STREAMS", "streams", "0"}, {2}},  // a stream named "streams"
      {{"XREAD", "COUNT", "1", "STREAMS"}, {}},     // no keyword with keys after it: Redis errors
      {{"XREAD", "COUNT", "1", "STREAMS", "s"}, {}},  // a key with no id: Redis errors
      {{"XREAD", "STREAMS", "s1", "s2", "0"}, {2}},   // unbalanced: as Redis's specs say; XREAD errors
      // XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key... id...
      {{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}, {5}},
      {{"XREADGROUP", "GROUP", "streams", "streams", "COUNT", "1", "NOACK", "STREAMS", "a", "b", ">", ">"}, {8, 9}},
      // SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dest]
      {{"SORT", "l"}, {1}},
      {{"SORT", "l", "ALPHA"}, {1}},
      {{"SORT", "l", "LIMIT", "0", "5", "STORE", "dst"}, {1, 6}},
      {{"sort", "l", "store", "a", "STORE", "b"}, {1, 5}},  // the last STORE wins, as in SORT
      {{"SORT", "l", "GET", "store"}, {1}},                 // a GET pattern, not a STORE option
      {{"SORT", "l", "BY", "store", "STORE", "d"}, {1, 5}},
      {{"SORT_RO", "l", "BY", "w_*"}, {1}},
      // GEORADIUS key lon lat radius unit [...] [STORE key] [STOREDIST key]
      {{"GEORADIUS", "g", "0", "0", "1", "km"}, {1}},
      {{"GEORADIUS", "g", "0", "0", "1", "km", "STORE", "dst"}, {1, 7}},
      {{"GEORADIUS", "g", "0", "0", "1", "km", "COUNT", "3", "STOREDIST", "dst"}, {1, 9}},
      {{"GEORADIUSBYMEMBER", "g", "store", "1", "km", "STORE", "d"}, {1, 6}},
      {{"GEOSEARCHSTORE", "d", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"}, {1, 2}},
      // LMPOP numkeys key... LEFT|RIGHT [COUNT n]; BLMPOP timeout numkeys key...
      {{"LMPOP", "2", "a", "b", "LEFT"}, {2, 3}},
      {{"LMPOP", "3", "a", "b", "LEFT"}, {2, 3, 4}},  // as Redis's specs say; LMPOP then errors
      {{"LMPOP", "4", "a", "b", "LEFT"}, {kInvalid}},
      {{"BLMPOP", "0", "1", "a", "LEFT"}, {3}},
      {{"BLPOP", "a", "b", "0"}, {1, 2}},
      {{"BITOP", "AND", "d", "a", "b"}, {2, 3, 4}},
      {{"PFMERGE", "d", "a", "b"}, {1, 2, 3}},
      {{"PFMERGE", "d"}, {1}},  // the sources are optional: PFMERGE d creates d
      {{"SINTERSTORE", "d", "a"}, {1, 2}},
      // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [KEYS key...]
      {{"MIGRATE", "h", "6379", "k", "0", "1000"}, {3}},
      {{"MIGRATE", "h", "6379", "", "0", "1000", "KEYS", "a", "b"}, {3, 7, 8}},
  };
  for (const Case& c : cases) {
    std::string line;
    for (auto& a : c.argv.store) line += a + " ";
    CAPTURE(line);
    CHECK(keys_of(c.argv) == c.keys);
  }
}

TEST_CASE("key positions are appended, not replaced") {
  Argv argv{"MGET", "a", "b"};
  std::vector<KeyRef> refs{{7, true}};
  REQUIRE(resolve_keys(*lookup_command(argv.span()), argv.span(), refs));
  REQUIRE(refs.size() == 3);
  CHECK(refs[0].argv_index == 7);
  CHECK(refs[2].argv_index == 2);
}

TEST_CASE("writes that may create a key are marked") {
  struct Case {
    Argv argv;
    std::vector<bool> creates;
  };
  const Case cases[] = {
      {{"SET", "k", "v"}, {true}},
      {{"GET", "k"}, {false}},
      {{"INCR", "k"}, {true}},
      {{"LPUSH", "k", "v"}, {true}},
      {{"SETRANGE", "k", "0", "v"}, {true}},  // UPDATE on a denyoom command
      {{"EXPIRE", "k", "10"}, {false}},       // UPDATE, but never creates
      {{"DEL", "k"}, {false}},
      {{"RENAME", "a", "b"}, {false, true}},
      {{"LMOVE", "a", "b", "LEFT", "RIGHT"}, {false, true}},
      {{"MSET", "a", "1", "b", "2"}, {true, true}},
      {{"MSETNX", "a", "1", "b", "2"}, {true, true}},
      {{"SORT", "l", "STORE", "d"}, {false, true}},
      {{"EVAL", "s", "1", "k"}, {true}},  // a script may write any key it is given
      {{"EVAL_RO", "s", "1", "k"}, {false}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.argv.store[0]);
    std::vector<KeyRef> refs;
    REQUIRE(resolve_keys(*lookup_command(c.argv.span()), c.argv.span(), refs));
    std::vector<bool> got;
    for (auto r : refs) got.push_back(r.may_create);
    CHECK(got == c.creates);
  }
}

TEST_CASE("routing follows the design") {
  auto row = [](std::vector<std::string> args) {
    Argv argv(std::move(args));
    const CommandInfo* c = lookup_command(argv.span());
    REQUIRE(c != nullptr);
    return c;
  };
  struct Case {
    std::vector<std::string> argv;
    Route route;
    Merge merge;
  };
  const Case cases[] = {
      {{"GET", "k"}, Route::Single, Merge::None},
      {{"OBJECT", "ENCODING", "k"}, Route::Single, Merge::None},
      {{"XINFO", "STREAM", "k"}, Route::Single, Merge::None},
      {{"MGET", "k"}, Route::Split, Merge::Ordered},
      {{"MSET", "k", "v"}, Route::Split, Merge::AllOk},
      {{"DEL", "k"}, Route::Split, Merge::Sum},
      {{"UNLINK", "k"}, Route::Split, Merge::Sum},
      {{"EXISTS", "k"}, Route::Split, Merge::Sum},
      {{"TOUCH", "k"}, Route::Split, Merge::Sum},
      {{"MSETNX", "a", "1"}, Route::SameNode, Merge::None},
      {{"RENAME", "a", "b"}, Route::SameNode, Merge::None},
      {{"EVAL", "s", "0"}, Route::SameNode, Merge::None},
      {{"SORT", "l"}, Route::SameNode, Merge::None},
      {{"GEORADIUS", "g", "0", "0", "1", "km"}, Route::SameNode, Merge::None},
      {{"PFCOUNT", "a"}, Route::SameNode, Merge::None},
      {{"DBSIZE"}, Route::FanOut, Merge::Sum},
      {{"KEYS", "*"}, Route::FanOut, Merge::Concat},
      {{"SCAN", "0"}, Route::FanOut, Merge::Scan},
      {{"RANDOMKEY"}, Route::FanOut, Merge::Random},
      {{"FLUSHDB"}, Route::FanOut, Merge::AllOk},
      {{"FLUSHALL"}, Route::FanOut, Merge::AllOk},
      {{"TIME"}, Route::AnyNode, Merge::None},
      {{"COMMAND"}, Route::AnyNode, Merge::None},
      {{"PING"}, Route::Local, Merge::None},
      {{"CLIENT", "SETINFO", "lib-name", "x"}, Route::Local, Merge::None},
      {{"MULTI"}, Route::Transaction, Merge::None},
      {{"EXEC"}, Route::Transaction, Merge::None},
      {{"WATCH", "k"}, Route::Transaction, Merge::None},
      {{"SUBSCRIBE", "ch"}, Route::PubSub, Merge::None},
      {{"BGSAVE"}, Route::Refused, Merge::None},
      {{"MIGRATE", "h", "1", "k", "0", "1"}, Route::Refused, Merge::None},
      {{"CLIENT", "LIST"}, Route::Local, Merge::None},  // headroom's own clients (proxy/client_commands.cpp)
      {{"CLIENT", "KILL", "ID", "1"}, Route::Local, Merge::None},
      {{"SWAPDB", "0", "1"}, Route::Refused, Merge::None},
      // Dangerous, and refused by the router unless allow_dangerous_commands names them:
      {{"CONFIG", "GET", "x"}, Route::AnyNode, Merge::None},
      {{"CONFIG", "SET", "x", "y"}, Route::FanOut, Merge::AllOk},
      {{"DEBUG", "SLEEP", "0"}, Route::FanOut, Merge::Same},
      {{"SHUTDOWN"}, Route::Local, Merge::None},
      {{"MONITOR"}, Route::Local, Merge::None},
  };
  for (const Case& c : cases) {
    CAPTURE(c.argv[0]);
    const CommandInfo* r = row(c.argv);
    CHECK(r->route == c.route);
    CHECK(r->merge == c.merge);
  }
  for (const char* name : {"flushall", "flushdb", "keys", "config", "debug", "shutdown", "monitor"}) {
    CAPTURE(name);
    CHECK(row({name})->has(kDangerous));
  }
  CHECK_FALSE(row({"get"})->has(kDangerous));
}

TEST_CASE("every row is consistent with its route") {
  for (const CommandInfo& c : all_commands()) {
    CAPTURE(c.name);
    bool merges = c.route == Route::Split || c.route == Route::FanOut;
    CHECK(merges == (c.merge != Merge::None));
    if (c.route == Route::Single || c.route == Route::Split || c.route == Route::SameNode) CHECK_FALSE(c.key_specs.empty());
    if (c.route == Route::FanOut || c.route == Route::AnyNode || c.route == Route::Local) CHECK(c.key_specs.empty());
    CHECK(c.arity != 0);
  }
}

TEST_CASE("a write's growth of an existing key: what its arguments and reply say, else nothing") {
  auto growth = [](std::initializer_list<std::string> args, std::string_view reply) {
    Argv argv(args);
    const CommandInfo* cmd = lookup_command(argv.span());
    REQUIRE(cmd != nullptr);
    return growth_bytes(*cmd, argv.span(), reply);
  };
  // appends add their payload
  CHECK(growth({"APPEND", "k", std::string(1000, 'a')}, ":1000\r\n") == 1000);
  CHECK(growth({"RPUSH", "l", "abc", "de"}, ":7\r\n") == 5);
  CHECK(growth({"LINSERT", "l", "BEFORE", "pivot", "xyz"}, ":3\r\n") == 3);
  // adds count only the elements the reply says are new
  CHECK(growth({"SADD", "s", "aaaa", "bbbb", "cccc", "dddd"}, ":2\r\n") == 8);
  CHECK(growth({"SADD", "s", "aaaa"}, ":0\r\n") == 0);
  CHECK(growth({"HSET", "h", "f1", "v1", "f2", "v2"}, ":1\r\n") == 4);
  CHECK(growth({"HSET", "h", "f1", "v1", "f2", "v2"}, ":2\r\n") == 8);
  // overwrites, deletes and pops grow nothing
  CHECK(growth({"SET", "k", std::string(1000, 'a')}, "+OK\r\n") == 0);
  CHECK(growth({"MSET", "a", "1", "b", "2"}, "+OK\r\n") == 0);
  CHECK(growth({"DEL", "k"}, ":1\r\n") == 0);
  CHECK(growth({"LPOP", "l"}, "$1\r\na\r\n") == 0);
  CHECK(growth({"HDEL", "h", "f1"}, ":1\r\n") == 0);
}
