// The directory cache: versioned entries applied in any order, retiring marks and
// FLUSHALL, growth and tombstones, and the reload epoch.
#include <doctest/doctest.h>

#include <string>

#include "balancer/directory.h"

using namespace headroom::balancer;

namespace {
NodeIndex node_of(const Directory& d, const std::string& k) { return d.find(k)->node; }
}  // namespace

TEST_CASE("an older change never overwrites a newer one") {
  Directory d;
  CHECK(d.apply("k", 1, 10, false));
  CHECK_FALSE(d.apply("k", 2, 9, false));  // the stream's message arriving after a newer reply
  CHECK(node_of(d, "k") == 1);
  CHECK(d.apply("k", 3, 10, true));  // the same version (a reply and its own message) may land twice
  CHECK(d.find("k")->retiring);
  d.erase("k", 9);  // a removal older than the entry leaves it
  CHECK(d.find("k").has_value());
  d.erase("k", 12);
  CHECK_FALSE(d.find("k").has_value());
}

TEST_CASE("FLUSHALL makes every older entry retiring, not newer ones") {
  Directory d;
  d.apply("old", 0, 5, false);
  d.apply("new", 1, 8, false);
  d.flushed(7);
  CHECK(d.find("old")->retiring);
  CHECK_FALSE(d.find("new")->retiring);
  CHECK(d.flushed_seq() == 7);
  d.flushed(6);  // never backwards
  CHECK(d.flushed_seq() == 7);
  d.apply("old", 0, 9, false);  // revived after the flush
  CHECK_FALSE(d.find("old")->retiring);
}

TEST_CASE("the version counter moves with every change, so cached lookups know") {
  Directory d;
  uint64_t v = d.version();
  d.apply("a", 1, 1, false);
  CHECK(d.version() != v);
  v = d.version();
  CHECK_FALSE(d.apply("a", 1, 0, false));
  CHECK(d.version() == v);  // nothing changed
  d.flushed(5);
  CHECK(d.version() != v);
}

TEST_CASE("growth, erase, re-add: every answer stays right; keys are binary-safe") {
  Directory d;
  for (int i = 0; i < 50000; ++i) d.apply("key:" + std::to_string(i), static_cast<NodeIndex>(i % 4), 1, false);
  for (int i = 0; i < 50000; i += 2) d.erase("key:" + std::to_string(i), 1);
  for (int i = 0; i < 50000; i += 4) d.apply("key:" + std::to_string(i), 9, 2, false);
  for (int i = 0; i < 50000; ++i) {
    auto e = d.find("key:" + std::to_string(i));
    if (i % 4 == 0) CHECK((e && e->node == 9 && e->version == 2));
    else if (i % 2 == 0) CHECK_FALSE(e.has_value());
    else CHECK((e && e->node == static_cast<NodeIndex>(i % 4)));
  }
  CHECK(d.size() == 25000 + 12500);
  CHECK(d.count_on(9) == 12500);
  d.apply(std::string("bin\0ary", 7), 2, 1, false);
  CHECK(node_of(d, std::string("bin\0ary", 7)) == 2);
  CHECK_FALSE(d.find("bin").has_value());
  d.clear();
  CHECK(d.size() == 0);
  CHECK_FALSE(d.find("key:1").has_value());
}

TEST_CASE("a reload epoch drops only the entries it did not see") {
  Directory d;
  for (int i = 0; i < 1000; ++i) d.apply("old:" + std::to_string(i), static_cast<NodeIndex>(i % 255), 1, false);
  d.begin_epoch();  // an interrupted reload: it sees the even keys, then stops
  for (int i = 0; i < 1000; i += 2) d.apply("old:" + std::to_string(i), 7, 2, false);
  d.begin_epoch();  // a full reload: the main server has the keys below 500, and a new one
  for (int i = 0; i < 500; ++i) d.apply("old:" + std::to_string(i), 254, 3, false);
  d.apply("new", 3, 3, false);
  CHECK(node_of(d, "old:999") == 999 % 255);  // still served while the reload runs
  CHECK(d.end_epoch() == 500);
  CHECK(d.size() == 501);
  for (int i = 0; i < 1000; ++i) CHECK(d.find("old:" + std::to_string(i)).has_value() == (i < 500));
  CHECK(node_of(d, "old:0") == 254);
  CHECK(d.end_epoch() == 0);  // nothing else goes without a new epoch
}
