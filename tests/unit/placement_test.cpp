// Placement arithmetic: the ledger's projected fill (a new key counted exactly once
// from placement to the poll that includes it), lowest fill wins, unreachable or
// unpolled nodes never get new keys, sizes fill in proportion.
#include <doctest/doctest.h>

#include <array>
#include <cstdlib>

#include "balancer/directory.h"
#include "balancer/ledger.h"
#include "balancer/memory_poller.h"
#include "balancer/placement.h"

using namespace headroom;
using namespace headroom::balancer;

namespace {
// Nodes with (used_memory, maxmemory) as their last poll gave them, all reachable.
struct Nodes {
  NodeRegistry reg;
  Ledger ledger;
  explicit Nodes(std::initializer_list<std::pair<uint64_t, uint64_t>> used_max)
      : reg(configs(used_max.size())), ledger(reg) {
    NodeIndex i = 0;
    for (auto [u, m] : used_max) {
      reg[i].reachable = reg[i].backend_up = true;
      ledger.poll_sent(i);
      ledger.poll_answered(i, {u, m, 0}, 0);
      ++i;
    }
  }
  static std::vector<conf::BackendConfig> configs(size_t n) {
    std::vector<conf::BackendConfig> cfg(n);
    for (size_t i = 0; i < n; ++i) cfg[i].name = "node" + std::to_string(i + 1);
    return cfg;
  }
  std::optional<NodeIndex> choose() const { return choose_node(reg, ledger); }
};
}  // namespace

TEST_CASE("the node with the most free memory gets the new key") {
  Nodes n({{80, 100}, {30, 100}, {50, 100}, {90, 100}});
  CHECK(n.choose() == NodeIndex{1});
}

TEST_CASE("growth answered since the last poll is counted") {
  Nodes n({{50, 100}, {40, 100}});
  n.ledger.grown(1, 20);  // 60% projected
  CHECK(n.choose() == NodeIndex{0});
}

TEST_CASE("bytes reserved for placed keys still on their way are counted") {
  Nodes n({{50, 100}, {40, 100}});
  n.ledger.reserve(1, 20);  // 60% projected
  CHECK(n.choose() == NodeIndex{0});
}

TEST_CASE("a new key's bytes count once, from placement to the poll that includes them") {
  Nodes n({{1000, 100000}});
  const uint64_t b = n.ledger.stored_bytes(0, 500);
  CHECK(n.ledger.projected_bytes(0) == 1000);
  auto r = n.ledger.reserve(0, 500);  // placed: the write is on its way
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
  n.ledger.write_done(r, true);  // answered: no longer reserved, now growth
  CHECK(n.ledger.reserved(0) == 0);
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
  n.ledger.poll_sent(0);  // a poll sent after the write was answered includes it
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
  n.ledger.poll_answered(0, {1000 + b, 100000, 1}, 0);
  CHECK(n.ledger.growth_since_poll(0) == 0);
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
}

TEST_CASE("a large value on a jemalloc node counts at its size class, once") {
  NodeRegistry reg(std::vector<conf::BackendConfig>(1));
  reg[0].reachable = reg[0].backend_up = true;
  Ledger ledger(reg);
  ledger.poll_sent(0);
  ledger.poll_answered(0, {1 << 20, 0, 0, true}, 0);
  const uint64_t value = 7'500'000;  // jemalloc keeps it in an 8 MiB extent
  const uint64_t b = ledger.stored_bytes(0, value);
  CHECK(b >= (8u << 20));
  CHECK(b < (8u << 20) + 1024);
  auto r = ledger.reserve(0, value);
  CHECK(ledger.projected_bytes(0) == (1u << 20) + b);
  ledger.write_done(r, true);
  ledger.poll_sent(0);
  ledger.poll_answered(0, {(1u << 20) + b, 0, 1, true}, 0);
  CHECK(ledger.projected_bytes(0) == (1u << 20) + b);
  // small values round to 16-byte steps, then four classes per doubling
  CHECK(ledger.stored_bytes(0, 100) == ledger.stored_bytes(0, 112));
  CHECK(ledger.stored_bytes(0, 129) == ledger.stored_bytes(0, 160));
  CHECK(ledger.stored_bytes(0, 161) == ledger.stored_bytes(0, 192));
}

TEST_CASE("a write answered while a poll is out counts until the next poll") {
  Nodes n({{1000, 100000}});
  const uint64_t b = n.ledger.stored_bytes(0, 500);
  auto r = n.ledger.reserve(0, 500);
  n.ledger.poll_sent(0);
  n.ledger.write_done(r, true);  // the poll may or may not have seen it
  n.ledger.poll_answered(0, {1000, 100000, 0}, 0);  // it did not
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
  n.ledger.poll_sent(0);
  n.ledger.poll_answered(0, {1000 + b, 100000, 1}, 0);  // the next one does
  CHECK(n.ledger.projected_bytes(0) == 1000 + b);
}

TEST_CASE("a poll above what was expected counts only once the excess has lasted, as much as it lasted") {
  Nodes n({{1000, 100000}});
  uint64_t t = 10'000;
  auto poll = [&](uint64_t used, uint64_t after_ms) {
    t += after_ms;
    n.ledger.poll_sent(0);
    n.ledger.poll_answered(0, {used, 100000, 0}, t);
    return n.ledger.projected_bytes(0);
  };
  // A spike over a few polls (a large value's query buffer, kept a while) is not taken...
  CHECK(poll(9000, 250) == 1000);
  CHECK(poll(9000, 250) == 1000);
  CHECK(poll(1000, 250) == 1000);
  // ...an excess that lasts (growth nobody counted) is, from kTransientMs on, and only
  // as far as it held all along.
  CHECK(poll(3500, 250) == 1000);
  CHECK(poll(3000, 500) == 1000);
  CHECK(poll(3000, Ledger::kTransientMs - 500) == 3000);
  CHECK(poll(3000, 250) == 3000);
  // and less than expected is taken at once
  CHECK(poll(2000, 250) == 2000);
  // An excess that grew in steps (memory written behind the proxy's back) is taken
  // whole a kTransientMs after it stopped growing, not only its first step.
  for (uint64_t used = 3000; used <= 10000; used += 1000) poll(used, 100);
  for (int i = 0; i < 11; ++i) poll(10000, 100);
  CHECK(n.ledger.projected_bytes(0) == 10000);
}

TEST_CASE("a reservation whose write failed, or never went, counts nothing") {
  Nodes n({{1000, 100000}});
  auto a = n.ledger.reserve(0, 500);
  auto b = n.ledger.reserve(0, 300);
  n.ledger.write_done(a, false);  // OOM, or the request was refused
  CHECK(n.ledger.projected_bytes(0) == 1000 + n.ledger.stored_bytes(0, 300));
  n.ledger.write_done(b, false);
  CHECK(n.ledger.projected_bytes(0) == 1000);
}

TEST_CASE("nodes of different sizes fill in proportion") {
  Nodes n({{100'000, 1'000'000}, {150'000, 2'000'000}});  // 10% vs 7.5%
  CHECK(n.choose() == NodeIndex{1});
  // A burst of equal writes: fills stay within one write of each other.
  for (int i = 0; i < 1000; ++i) {
    auto node = n.choose();
    REQUIRE(node.has_value());
    n.ledger.write_done(n.ledger.reserve(*node, 100), true);
  }
  CHECK(std::abs(n.ledger.projected_fill(0) - n.ledger.projected_fill(1)) < 0.002);
}

TEST_CASE("a full node gets no new keys") {
  Nodes n({{99, 100}, {90, 100}});
  CHECK(n.choose() == NodeIndex{1});
  n.ledger.grown(1, 9);  // 99% projected: full too
  CHECK_FALSE(n.choose().has_value());
}

TEST_CASE("full nodes that evict keep taking new keys, spread by the bytes placed on each") {
  Nodes n({{1000, 1000}, {1000, 1000}, {1000, 1000}, {500, 1000}});
  auto evicting = [&](NodeIndex i) {
    n.ledger.poll_sent(i);
    n.ledger.poll_answered(i, {i == 3 ? 500u : 1000u, 1000, 1, true, true}, 0);
  };
  for (NodeIndex i = 0; i < 4; ++i) evicting(i);
  CHECK(n.choose() == NodeIndex{3});  // not full yet: first
  std::array<int, 4> got{};
  for (int k = 0; k < 400; ++k) {
    auto node = n.choose();
    REQUIRE(node.has_value());
    ++got[*node];
    n.ledger.write_done(n.ledger.reserve(*node, 36), true);
  }
  // node4 first took what it had room for; once full it counts as ahead by 1/16 of its
  // capacity at most, and the four share what follows.
  CHECK(got[3] >= got[0]);
  CHECK(std::abs(got[3] - got[0]) <= 6);
  CHECK(std::abs(got[0] - got[1]) <= 1);
  CHECK(std::abs(got[1] - got[2]) <= 1);
}

TEST_CASE("full nodes that evict share new keys evenly whenever each is polled and whatever it reports") {
  // Each poll finds an evicting node back near its maxmemory, a little above or below
  // (query buffers, eviction's granularity): neither when a node was polled last nor
  // what it reported says how many new keys it took.
  const std::array<uint64_t, 4> at = {100'000, 101'500, 98'500, 100'000};
  Nodes n({{at[0], 100'000}, {at[1], 100'000}, {at[2], 100'000}, {at[3], 100'000}});
  auto poll = [&](NodeIndex i) {
    n.ledger.poll_sent(i);
    n.ledger.poll_answered(i, {at[i], 100'000, 1, true, true}, 0);
  };
  for (NodeIndex i = 0; i < 4; ++i) poll(i);
  std::array<int, 4> got{};
  for (int k = 0; k < 2000; ++k) {
    auto node = n.choose();
    REQUIRE(node.has_value());
    ++got[*node];
    n.ledger.write_done(n.ledger.reserve(*node, 900), true);
    if (k % 37 == 36) poll(static_cast<NodeIndex>((k / 37) % 3));  // node4 is never polled again
  }
  for (int g : got) CHECK(std::abs(g - 500) <= 10);
}

TEST_CASE("eviction: allkeys-* evicts, volatile-* only while keys have a TTL, noeviction never") {
  const std::string mem = "# Memory\r\nused_memory:100\r\nmaxmemory:1000\r\nmaxmemory_policy:";
  CHECK(parse_info(mem + "allkeys-lru\r\n# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\n").evicts);
  CHECK(parse_info(mem + "volatile-lru\r\n# Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=9\r\n").evicts);
  CHECK_FALSE(parse_info(mem + "volatile-lru\r\n# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\n").evicts);
  CHECK_FALSE(parse_info(mem + "noeviction\r\n# Keyspace\r\ndb0:keys=5,expires=5,avg_ttl=9\r\n").evicts);
  CHECK_FALSE(parse_info("# Memory\r\nused_memory:100\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n").evicts);
}

TEST_CASE("a node's persistence state, read from its INFO persistence") {
  const auto p = parse_persistence(
      "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_changes_since_last_save:42\r\n"
      "rdb_bgsave_in_progress:0\r\naof_enabled:1\r\naof_rewrite_in_progress:1\r\naof_rewrite_scheduled:0\r\n");
  CHECK_FALSE(p.loading);
  CHECK(p.aof_enabled);
  CHECK(p.aof_rewrite_in_progress);
  CHECK_FALSE(p.aof_rewrite_scheduled);
  CHECK_FALSE(p.rdb_bgsave_in_progress);
  CHECK(p.rdb_changes_since_last_save == 42);
  // "loading" is its own field, not the start of another's name
  CHECK_FALSE(parse_persistence("async_loading:1\r\nloading:0\r\n").loading);
  CHECK(parse_persistence("# Persistence\r\nloading:1\r\n").loading);
}

TEST_CASE("unreachable, unpolled and disconnected nodes get no new keys") {
  NodeRegistry reg(Nodes::configs(3));
  Ledger ledger(reg);
  for (NodeIndex i = 0; i < 3; ++i) reg[i].reachable = reg[i].backend_up = true;
  ledger.poll_answered(0, {90, 100, 0}, 0);
  ledger.poll_answered(1, {10, 100, 0}, 0);
  CHECK(choose_node(reg, ledger) == NodeIndex{1});  // node 2 was never polled
  reg[1].reachable = false;
  CHECK(choose_node(reg, ledger) == NodeIndex{0});
  reg[0].backend_up = false;
  CHECK_FALSE(choose_node(reg, ledger).has_value());
}

TEST_CASE("capacity: maxmemory, else configured capacity, else the largest known") {
  Nodes n({{10, 0}, {10, 0}});
  n.reg[0].config.capacity = 1000;
  n.ledger.capacities_changed();
  CHECK(n.ledger.capacity(0) == 1000);
  CHECK(n.ledger.capacity(1) == 1000);
  Nodes none({{10, 0}});
  CHECK(none.ledger.capacity(0) == 1ull << 30);
}

TEST_CASE("INFO figures are read") {
  auto f = parse_info("# Memory\r\nused_memory:12345\r\nused_memory_human:12K\r\nmaxmemory:999\r\n# Keyspace\r\ndb0:keys=42,expires=0\r\n");
  CHECK(f.used_memory == 12345);
  CHECK(f.maxmemory == 999);
  CHECK(f.keys == 42);
}

TEST_CASE("hash tags: keys sharing a tag share a directory key") {
  CHECK(directory_key("{user:42}:cart") == "{user:42}");
  CHECK(directory_key("profile:{user:42}") == "{user:42}");
  CHECK(directory_key("plain") == "plain");
  CHECK(directory_key("{}empty") == "{}empty");
  CHECK(directory_key("open{only") == "open{only");
  CHECK(is_tag("{a}"));
  CHECK_FALSE(is_tag("a"));
  CHECK(stable_hash("abc") == 0xe71fa2190541574bull);  // FNV-1a 64: must never change
}

TEST_CASE("another proxy's placement counts from its message until a poll a whole interval later") {
  Nodes n({{1000, 1'000'000}, {1000, 1'000'000}});
  n.ledger.placed_elsewhere(0, 5000);  // announced: its write may not have run yet
  CHECK(n.ledger.projected_bytes(0) == 6000);
  CHECK(n.choose() == NodeIndex{1});
  n.ledger.poll_sent(0);
  n.ledger.poll_answered(0, {1000, 1'000'000, 0}, 0);  // too soon to include it
  CHECK(n.ledger.projected_bytes(0) == 6000);
  n.ledger.poll_sent(0);
  n.ledger.poll_answered(0, {6000, 1'000'000, 1}, 0);  // a whole interval later: it does
  CHECK(n.ledger.projected_bytes(0) == 6000);
  n.ledger.poll_sent(0);
  n.ledger.poll_answered(0, {6000, 1'000'000, 1}, 0);
  CHECK(n.ledger.projected_bytes(0) == 6000);
}
