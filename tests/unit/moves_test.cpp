// Moves (docs/moves.md): the rebalancer's choice of what to move, the entry values of
// the protocol's states, and the directory cache through each transition.
#include <doctest/doctest.h>

#include <numeric>
#include <string>
#include <vector>

#include "balancer/directory.h"
#include "balancer/directory_scripts.h"
#include "balancer/rebalancer.h"

using namespace headroom::balancer;

namespace {
constexpr uint64_t kMB = 1ull << 20;
NodeLoad load(uint64_t used_mb, uint64_t size_mb, bool draining = false, uint64_t keys = 10) {
  return NodeLoad{used_mb * kMB, size_mb * kMB, keys, true, draining};
}
}  // namespace

TEST_CASE("balanced nodes, or nodes within the threshold, need no move") {
  std::vector<NodeLoad> n = {load(10, 100), load(10, 100), load(10, 100)};
  CHECK(plan_move(n, 0.05, 64 * 1024).from == -1);
  n[0] = load(10, 100);
  n[1] = load(104, 1000);  // 10.4 % vs a mean of about 10.3 %: within 5 %
  CHECK(plan_move(n, 0.05, 64 * 1024).from == -1);
}

TEST_CASE("the fullest node gives the emptiest what it exceeds the mean by, or what the emptiest lacks") {
  std::vector<NodeLoad> n = {load(40, 100), load(10, 100), load(10, 100), load(20, 100)};
  MovePlan p = plan_move(n, 0.05, 64 * 1024);
  REQUIRE(p.from == 0);
  CHECK(p.to == 1);  // the first of the two emptiest
  // mean 20 %: node 0 exceeds it by 20 MB, node 1 lacks 10 MB: 10 MB move now
  CHECK(p.bytes == doctest::Approx(10.0 * kMB).epsilon(0.001));
  // Sizes count: 30 MB of 300 MB is emptier than 10 MB of 50 MB.
  std::vector<NodeLoad> m = {load(10, 50), load(30, 300), load(40, 100)};
  p = plan_move(m, 0.05, 64 * 1024);
  CHECK(p.from == 2);
  CHECK(p.to == 1);
}

TEST_CASE("an imbalance smaller than the minimum is left alone") {
  std::vector<NodeLoad> n = {load(2, 100), load(1, 100)};
  CHECK(plan_move(n, 0.05, 2 * kMB).from == -1);
  CHECK(plan_move(n, 0.05, 64 * 1024).from == 0);
}

TEST_CASE("a draining node with keys goes first, to the emptiest node that is not draining") {
  std::vector<NodeLoad> n = {load(50, 100), load(5, 100, true), load(20, 100), load(1, 100, true)};
  MovePlan p = plan_move(n, 0.05, 64 * 1024);
  CHECK(p.from == 1);
  CHECK(p.to == 2);
  CHECK(p.bytes == UINT64_MAX);
  // Drained (no keys left): the others balance among themselves.
  n[1].keys = 0;
  n[3].keys = 0;
  p = plan_move(n, 0.05, 64 * 1024);
  CHECK(p.from == 0);
  CHECK(p.to == 2);
  // Unusable nodes take part in nothing.
  n[2].usable = false;
  CHECK(plan_move(n, 0.05, 64 * 1024).from == -1);  // node 0 alone
}

TEST_CASE("keys are chosen largest first among those that fit what is left, never more than asked") {
  const std::vector<uint64_t> sizes = {100, 5000, 300, 2500, 40000, 1000, 1000};
  auto chosen = choose_keys(sizes, 4000, 1 << 20, 100);
  uint64_t total = 0;
  for (size_t i : chosen) total += sizes[i];
  CHECK(total == 3900);  // 2500 + 1000 + 300 + 100: the second 1000 no longer fits
  CHECK(chosen == std::vector<size_t>{3, 5, 2, 0});
}

TEST_CASE("keys larger than max_key_bytes are never chosen, and the count is bounded") {
  const std::vector<uint64_t> sizes = {10, 20, 5000, 30};
  auto chosen = choose_keys(sizes, UINT64_MAX, 1000, 2);
  CHECK(chosen == std::vector<size_t>{3, 1});
  chosen = choose_keys(sizes, UINT64_MAX, 1000, 100);
  CHECK(chosen.size() == 3);
}

TEST_CASE("entry values of every state parse") {
  scripts::EntryValue v;
  REQUIRE(scripts::parse_entry_value("node1 42", v));
  CHECK(v.node == "node1");
  CHECK(v.version == 42);
  CHECK_FALSE(v.retiring);
  CHECK(v.moving_to.empty());
  REQUIRE(scripts::parse_entry_value("node1 43 R", v));
  CHECK(v.retiring);
  REQUIRE(scripts::parse_entry_value("node-2 44 Mnode_3:7", v));
  CHECK(v.node == "node-2");
  CHECK(v.version == 44);
  CHECK(v.moving_to == "node_3");
  CHECK(v.flushes == 7);
  CHECK_FALSE(v.retiring);
  REQUIRE(scripts::parse_entry_value("node1", v));  // before versions
  CHECK(v.version == 0);
  CHECK_FALSE(scripts::parse_entry_value("node1 44 M:7", v));
  CHECK_FALSE(scripts::parse_entry_value("node1 44 Mx", v));
  CHECK_FALSE(scripts::parse_entry_value("node1 44 Q", v));
  CHECK_FALSE(scripts::parse_entry_value("node1 x", v));
}

TEST_CASE("the cache through a move: live, moving (counted), then live on the destination or back") {
  Directory d;
  d.apply("k", 1, 10, EntryState::Live);
  CHECK(d.moving() == 0);
  d.apply("k", 1, 11, EntryState::Moving);  // M
  CHECK(d.find("k")->moving);
  CHECK_FALSE(d.find("k")->retiring);
  CHECK(d.moving() == 1);
  // A reply older than the move (a placement answered late) does not end it, nor
  // does a placement's reply naming the moving entry's own version as live.
  CHECK_FALSE(d.apply("k", 1, 10, EntryState::Live));
  CHECK_FALSE(d.apply("k", 1, 11, EntryState::Live));
  CHECK(d.find("k")->moving);
  CHECK(d.moving() == 1);
  d.apply("k", 2, 12, EntryState::Live);  // P: committed to node 2
  CHECK(d.find("k")->node == 2);
  CHECK_FALSE(d.find("k")->moving);
  CHECK(d.moving() == 0);
  // A FLUSHALL during a move does not make a moving entry retiring (the move ends it).
  d.apply("j", 3, 20, EntryState::Moving);
  d.flushed(21);
  CHECK(d.find("j")->moving);
  CHECK_FALSE(d.find("j")->retiring);
  d.apply("j", 3, 22, EntryState::Live);  // undone
  CHECK(d.moving() == 0);
  // Erased, or dropped by a reload, a moving entry is no longer counted.
  d.apply("a", 0, 30, EntryState::Moving);
  d.apply("b", 0, 31, EntryState::Moving);
  CHECK(d.moving() == 2);
  d.erase("a", 32);
  CHECK(d.moving() == 1);
  d.begin_epoch();
  d.end_epoch();
  CHECK(d.moving() == 0);
  CHECK(d.size() == 0);
}
