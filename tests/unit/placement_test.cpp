// Placement arithmetic: lowest projected fill wins; bytes written since the last poll
// count; unreachable or unpolled nodes never get new keys; sizes fill in proportion.
#include <doctest/doctest.h>

#include "balancer/directory.h"
#include "balancer/memory_poller.h"
#include "balancer/placement.h"

using namespace headroom;
using namespace headroom::balancer;

namespace {
NodeRegistry make(std::initializer_list<std::pair<uint64_t, uint64_t>> used_max) {
  std::vector<conf::BackendConfig> cfg;
  int i = 0;
  for (auto [u, m] : used_max) {
    (void)u;
    (void)m;
    conf::BackendConfig c;
    c.name = "node" + std::to_string(++i);
    cfg.push_back(c);
  }
  NodeRegistry reg(cfg);
  i = 0;
  for (auto [u, m] : used_max) {
    auto& n = reg[static_cast<NodeIndex>(i++)];
    n.used_memory = u;
    n.maxmemory = m;
    n.polled = n.reachable = n.backend_up = true;
  }
  return reg;
}
}  // namespace

TEST_CASE("the node with the most free memory gets the new key") {
  auto reg = make({{80, 100}, {30, 100}, {50, 100}, {90, 100}});
  CHECK(choose_node(reg) == NodeIndex{1});
}

TEST_CASE("bytes written since the last poll are counted") {
  auto reg = make({{50, 100}, {40, 100}});
  reg[1].written_since_poll = 20;  // 60% projected
  CHECK(choose_node(reg) == NodeIndex{0});
}

TEST_CASE("bytes reserved for placed keys still on their way are counted") {
  auto reg = make({{50, 100}, {40, 100}});
  reg[1].reserved_bytes = 20;  // 60% projected
  CHECK(choose_node(reg) == NodeIndex{0});
}

TEST_CASE("nodes of different sizes fill in proportion") {
  auto reg = make({{100, 1000}, {150, 2000}});  // 10% vs 7.5%
  CHECK(choose_node(reg) == NodeIndex{1});
  // Simulate a burst of equal writes: fills stay within one write of each other.
  for (int i = 0; i < 1000; ++i) {
    auto n = choose_node(reg);
    reg[*n].written_since_poll += 1;
  }
  double f0 = projected_fill(reg[0], 0), f1 = projected_fill(reg[1], 0);
  CHECK(std::abs(f0 - f1) < 0.002);
}

TEST_CASE("a full node gets no new keys") {
  auto reg = make({{99, 100}, {90, 100}});
  CHECK(choose_node(reg) == NodeIndex{1});
  reg[1].written_since_poll = 9;  // 99% projected: full too
  CHECK_FALSE(choose_node(reg).has_value());
}

TEST_CASE("unreachable and unpolled nodes get no new keys") {
  auto reg = make({{90, 100}, {10, 100}, {20, 100}});
  reg[1].reachable = false;
  reg[2].polled = false;
  CHECK(choose_node(reg) == NodeIndex{0});
  reg[0].backend_up = false;
  CHECK_FALSE(choose_node(reg).has_value());
}

TEST_CASE("capacity: maxmemory, else configured capacity, else the fallback") {
  auto reg = make({{10, 0}, {10, 0}});
  reg[0].config.capacity = 1000;
  CHECK(reg[0].capacity(reg.fallback_capacity()) == 1000);
  CHECK(reg[1].capacity(reg.fallback_capacity()) == 1000);
}

TEST_CASE("INFO figures are read") {
  NodeState n;
  apply_info(n, "# Memory\r\nused_memory:12345\r\nused_memory_human:12K\r\nmaxmemory:999\r\n# Keyspace\r\ndb0:keys=42,expires=0\r\n");
  CHECK(n.used_memory == 12345);
  CHECK(n.maxmemory == 999);
  CHECK(n.keys == 42);
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

TEST_CASE("the directory cache: set, update, erase-if, growth, tombstones, clear") {
  Directory d;
  CHECK_FALSE(d.find("a").has_value());
  d.set("a", 1);
  d.set("b", 2);
  CHECK(d.find("a") == NodeIndex{1});
  d.set("a", 3);  // update in place
  CHECK(d.find("a") == NodeIndex{3});
  CHECK(d.size() == 2);
  d.erase_if("a", 1);  // names another node: kept
  CHECK(d.find("a") == NodeIndex{3});
  d.erase_if("a", 3);
  CHECK_FALSE(d.find("a").has_value());
  CHECK(d.size() == 1);
  // Grow well past the first table, erase half, re-add: every answer stays right.
  for (int i = 0; i < 50000; ++i) d.set("key:" + std::to_string(i), static_cast<NodeIndex>(i % 4));
  for (int i = 0; i < 50000; i += 2) d.erase_if("key:" + std::to_string(i), static_cast<NodeIndex>(i % 4));
  for (int i = 0; i < 50000; i += 4) d.set("key:" + std::to_string(i), 9);
  for (int i = 0; i < 50000; ++i) {
    auto n = d.find("key:" + std::to_string(i));
    if (i % 4 == 0) CHECK(n == NodeIndex{9});
    else if (i % 2 == 0) CHECK_FALSE(n.has_value());
    else CHECK(n == static_cast<NodeIndex>(i % 4));
  }
  CHECK(d.size() == 1 + 25000 + 12500);
  d.set(std::string("bin\0ary", 7), 2);  // keys are binary-safe
  CHECK(d.find(std::string("bin\0ary", 7)) == NodeIndex{2});
  CHECK_FALSE(d.find("bin").has_value());
  d.clear();
  CHECK(d.size() == 0);
  CHECK_FALSE(d.find("b").has_value());
}

TEST_CASE("the directory cache: a reload epoch drops only the entries it did not see") {
  Directory d;
  for (int i = 0; i < 1000; ++i) d.set("old:" + std::to_string(i), static_cast<NodeIndex>(i % 255));
  d.begin_epoch();  // an interrupted reload: it sees the even keys, then stops
  for (int i = 0; i < 1000; i += 2) d.set("old:" + std::to_string(i), 7);
  d.begin_epoch();  // a full reload: the main server has the keys below 500, and a new one
  for (int i = 0; i < 500; ++i) d.set("old:" + std::to_string(i), 254);
  d.set("new", 3);
  CHECK(d.find("old:999") == NodeIndex{999 % 255});  // still served while the reload runs
  CHECK(d.end_epoch() == 500);
  CHECK(d.size() == 501);
  for (int i = 0; i < 1000; ++i) CHECK(d.find("old:" + std::to_string(i)).has_value() == (i < 500));
  CHECK(d.find("old:0") == NodeIndex{254});
  CHECK(d.find("new") == NodeIndex{3});
  CHECK(d.end_epoch() == 0);  // nothing else goes without a new epoch
}
