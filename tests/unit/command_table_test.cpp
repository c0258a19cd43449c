// The command table: lookup (case-insensitive, subcommands), arity, and key
// positions resolved from Redis 7 key specs for the commands whose keys are hardest
// to find.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "resp/command_table.h"

using namespace headroom::resp;

namespace {

struct Argv {
  std::vector<std::string> store;
  std::vector<std::string_view> views;
  Argv(std::initializer_list<const char*> args) {
    for (auto a : args) store.emplace_back(a);
    for (auto& s : store) views.emplace_back(s);
  }
  std::span<const std::string_view> span() const { return views; }
};

// The argv positions of the keys, or {-1} when resolve_keys refuses the arguments.
std::vector<int> keys_of(std::initializer_list<const char*> args) {
  Argv argv(args);
  const CommandInfo* cmd = lookup_command(argv.span());
  REQUIRE(cmd != nullptr);
  std::vector<KeyRef> refs;
  if (!resolve_keys(*cmd, argv.span(), refs)) return {-1};
  std::vector<int> out;
  for (auto r : refs) out.push_back(static_cast<int>(r.argv_index));
  return out;
}

}  // namespace

TEST_CASE("lookup is case-insensitive and finds subcommands") {
  Argv get{"gEt", "k"};
  const CommandInfo* c = lookup_command(get.span());
  REQUIRE(c != nullptr);
  CHECK(c->name == "get");
  CHECK(c->route == Route::Single);

  Argv enc{"OBJECT", "Encoding", "k"};
  c = lookup_command(enc.span());
  REQUIRE(c != nullptr);
  CHECK(c->name == "object|encoding");

  bool unknown_sub = false;
  Argv bad_sub{"object", "nope", "k"};
  CHECK(lookup_command(bad_sub.span(), &unknown_sub) == nullptr);
  CHECK(unknown_sub);

  Argv unknown{"frobnicate"};
  unknown_sub = true;
  CHECK(lookup_command(unknown.span(), &unknown_sub) == nullptr);
  CHECK_FALSE(unknown_sub);

  Argv too_long{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  CHECK(lookup_command(too_long.span()) == nullptr);

  Argv container{"object"};  // no subcommand: the container row, for Redis's arity error
  c = lookup_command(container.span());
  REQUIRE(c != nullptr);
  CHECK_FALSE(arity_ok(*c, 1));
}

TEST_CASE("arity") {
  Argv get{"get"};
  const CommandInfo* c = lookup_command(get.span());
  CHECK(arity_ok(*c, 2));
  CHECK_FALSE(arity_ok(*c, 1));
  CHECK_FALSE(arity_ok(*c, 3));
  Argv mget{"mget"};
  c = lookup_command(mget.span());
  CHECK(arity_ok(*c, 2));
  CHECK(arity_ok(*c, 200));
  CHECK_FALSE(arity_ok(*c, 1));
}

TEST_CASE("key positions") {
  CHECK(keys_of({"GET", "k"}) == std::vector<int>{1});
  CHECK(keys_of({"MGET", "a", "b", "c"}) == std::vector<int>{1, 2, 3});
  CHECK(keys_of({"MSET", "a", "1", "b", "2"}) == std::vector<int>{1, 3});
  CHECK(keys_of({"DEL", "a", "b"}) == std::vector<int>{1, 2});
  // EVAL script numkeys key... arg...
  CHECK(keys_of({"EVAL", "return 1", "0"}) == std::vector<int>{});
  CHECK(keys_of({"EVAL", "return 1", "2", "a", "b", "x"}) == std::vector<int>{3, 4});
  CHECK(keys_of({"EVAL", "return 1", "3", "a"}) == std::vector<int>{-1});
  CHECK(keys_of({"EVAL", "return 1", "-1", "a"}) == std::vector<int>{-1});
  CHECK(keys_of({"EVAL", "return 1", "x", "a"}) == std::vector<int>{-1});
  // ZUNIONSTORE dest numkeys key... [WEIGHTS ...]
  CHECK(keys_of({"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}) == std::vector<int>{1, 3, 4});
  // XREAD [COUNT n] [BLOCK ms] STREAMS key... id...
  CHECK(keys_of({"XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"}) == std::vector<int>{4, 5});
  CHECK(keys_of({"XREAD", "BLOCK", "0", "COUNT", "1", "streams", "s1", "$"}) == std::vector<int>{6});
  CHECK(keys_of({"XREAD", "STREAMS", "s1", "s2", "0"}) == std::vector<int>{-1});  // unbalanced
  CHECK(keys_of({"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}) == std::vector<int>{5});
  // SORT key [... STORE dest]
  CHECK(keys_of({"SORT", "l"}) == std::vector<int>{1});
  CHECK(keys_of({"SORT", "l", "LIMIT", "0", "5", "STORE", "dst"}) == std::vector<int>{1, 6});
  // LMPOP numkeys key... LEFT|RIGHT
  CHECK(keys_of({"LMPOP", "2", "a", "b", "LEFT"}) == std::vector<int>{2, 3});
  // GEORADIUS key ... [STORE key]
  CHECK(keys_of({"GEORADIUS", "g", "0", "0", "1", "km", "STORE", "dst"}) == std::vector<int>{1, 7});
  CHECK(keys_of({"OBJECT", "ENCODING", "k"}) == std::vector<int>{2});
  CHECK(keys_of({"RENAME", "a", "b"}) == std::vector<int>{1, 2});
}

TEST_CASE("writes that may create a key are marked") {
  auto creates = [](std::initializer_list<const char*> args) {
    Argv argv(args);
    std::vector<KeyRef> refs;
    REQUIRE(resolve_keys(*lookup_command(argv.span()), argv.span(), refs));
    std::vector<bool> out;
    for (auto r : refs) out.push_back(r.may_create);
    return out;
  };
  CHECK(creates({"SET", "k", "v"}) == std::vector<bool>{true});
  CHECK(creates({"GET", "k"}) == std::vector<bool>{false});
  CHECK(creates({"INCR", "k"}) == std::vector<bool>{true});
  CHECK(creates({"LPUSH", "k", "v"}) == std::vector<bool>{true});
  CHECK(creates({"EXPIRE", "k", "10"}) == std::vector<bool>{false});
  CHECK(creates({"DEL", "k"}) == std::vector<bool>{false});
  CHECK(creates({"RENAME", "a", "b"}) == std::vector<bool>{false, true});
  CHECK(creates({"MSET", "a", "1", "b", "2"}) == std::vector<bool>{true, true});
}

TEST_CASE("routing follows the design") {
  auto route = [](std::initializer_list<const char*> args) {
    Argv argv(args);
    return lookup_command(argv.span())->route;
  };
  CHECK(route({"GET", "k"}) == Route::Single);
  CHECK(route({"MGET", "k"}) == Route::Split);
  CHECK(route({"MSETNX", "a", "1"}) == Route::SameNode);
  CHECK(route({"RENAME", "a", "b"}) == Route::SameNode);
  CHECK(route({"SCAN", "0"}) == Route::FanOut);
  CHECK(route({"PING"}) == Route::Local);
  CHECK(route({"MULTI"}) == Route::Refused);
  CHECK(route({"COMMAND"}) == Route::AnyNode);
}
