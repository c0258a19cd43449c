#include "balancer/sweep.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "balancer/coordinator.h"
#include "balancer/directory_scripts.h"

namespace headroom::balancer {

using scripts::Script;

namespace {
constexpr uint32_t kBucketsInFlight = 64;
// Bucket reads per tick outside a fast pass: a pass over the 65,536 buckets about
// every nine minutes (120 small reads a second on the main server). Notifications do
// the work as it happens; a fast pass runs whenever some may have been missed (a new
// coordinator, a notification connection that came back, a FLUSHALL).
constexpr uint32_t kBucketsPerTick = 6;
constexpr uint64_t kScanCount = 200;  // SCAN's COUNT per node step
}  // namespace

Sweep::Sweep(Coordinator& c) : c_(c) {}

void Sweep::begin() {
  ++generation_;
  next_bucket_ = 0;
  buckets_in_flight_ = 0;
  fast_ = true;  // what a previous coordinator left (or a FLUSHALL before this one took over)
  scans_.assign(c_.nodes().size(), NodeScan{});
  for (auto& s : scans_) {
    s.started_seq = c_.store().applied_seq();
    s.started_barrier = c_.barrier();
  }
}

void Sweep::node_added() {
  NodeScan s;
  s.started_seq = c_.store().applied_seq();
  s.started_barrier = c_.barrier();
  scans_.push_back(std::move(s));
}

void Sweep::end() {
  ++generation_;
  buckets_in_flight_ = 0;
  scans_.clear();
}

void Sweep::flushed(uint64_t) {
  // The flush's sequence number is in every bucket's reply (and in the proxies'
  // caches): the pass only has to run again, now and quickly.
  catch_up();
}

void Sweep::catch_up() {
  ++generation_;
  next_bucket_ = 0;
  buckets_in_flight_ = 0;
  fast_ = true;
  for (auto& s : scans_) s.in_flight = false;
}

void Sweep::tick() {
  budget_ = c_.sweep_keys_per_tick();
  reads_ = 0;
  load_buckets();
  scan_nodes();
}

// Keeps up to kBucketsInFlight reads going (refilled as replies come), within this
// tick's allowance unless the pass is a fast one.
void Sweep::load_buckets() {
  const uint64_t gen = generation_;
  while (buckets_in_flight_ < kBucketsInFlight && (fast_ || (budget_ > 0 && reads_ < kBucketsPerTick)) &&
         c_.main().up()) {
    const uint32_t bucket = next_bucket_;
    next_bucket_ = (next_bucket_ + 1) % kBuckets;
    if (next_bucket_ == 0) {
      ++passes_;
      fast_ = false;
    }
    ++reads_;
    const bool sent = c_.main().command(
        {"EVALSHA", scripts::sha(Script::LoadBucket), "1", MainStore::bucket_name(bucket)}, [this, gen](redisReply* r) {
          if (gen != generation_) return;
          --buckets_in_flight_;
          if (r != nullptr) on_bucket(r);
          load_buckets();
        });
    if (!sent) break;  // the loop checks the connection: not reached
    ++buckets_in_flight_;
    if (next_bucket_ == 0) break;  // one pass per wrap: the next tick goes on
  }
}

void Sweep::on_bucket(redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[2]->type != REDIS_REPLY_ARRAY) return;
  const uint64_t flushed = r->element[1]->type == REDIS_REPLY_INTEGER ? static_cast<uint64_t>(r->element[1]->integer) : 0;
  const redisReply* fields = r->element[2];
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view key = reply_text(fields->element[i]);
    std::string_view value = reply_text(fields->element[i + 1]);
    scripts::EntryValue ev;
    if (!scripts::parse_entry_value(value, ev)) continue;
    auto node = c_.nodes().find(ev.node);
    if (!node) continue;
    ++entries_checked_;
    const uint64_t version = ev.version;
    const bool retiring = ev.retiring;
    if (!ev.moving_to.empty()) {  // an interrupted move (or one of ours): the mover finishes it
      c_.found_moving(key, value);
      continue;
    }
    if (retiring || version < flushed) {
      c_.settle_later(std::string(key), *node, std::string(value), retiring ? version : flushed);
      continue;
    }
    if (is_tag(key)) {
      const NodeScan& s = scans_[*node];
      if (s.done && version < s.done_seq && !s.done_tags.count(std::string(key))) c_.retire(key, *node);
      continue;
    }
    ControlConn* conn = c_.node_conn(*node);
    if (conn == nullptr) continue;
    if (budget_ > 0) --budget_;
    const uint64_t gen = generation_;
    NodeIndex n = *node;
    // Not sent (cannot happen: up, node_conn): the entry is looked at again next pass.
    (void)conn->command({"EXISTS", key}, [this, gen, k = std::string(key), n](redisReply* e) {
      if (gen != generation_ || e == nullptr || e->type != REDIS_REPLY_INTEGER) return;
      if (e->integer == 0) c_.retire(k, n);
    });
  }
}

void Sweep::scan_nodes() {
  // What is left of this tick's budget, shared by the nodes.
  const uint64_t count = std::min<uint64_t>(kScanCount, budget_ / std::max<size_t>(1, scans_.size()));
  if (count == 0) return;
  for (NodeIndex i = 0; i < scans_.size(); ++i) {
    NodeScan& s = scans_[i];
    ControlConn* conn = c_.node_conn(i);
    if (s.in_flight || conn == nullptr || !c_.main().up()) continue;
    budget_ -= std::min(budget_, count);
    const uint64_t gen = generation_;
    s.in_flight = conn->command({"SCAN", s.cursor, "COUNT", std::to_string(count)}, [this, gen, i](redisReply* r) {
      if (gen != generation_) return;
      scans_[i].in_flight = false;
      if (r != nullptr) on_scan(i, r);
    });
  }
}

void Sweep::on_scan(NodeIndex node, redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY) return;
  NodeScan& s = scans_[node];
  s.cursor = std::string(reply_text(r->element[0]));
  const redisReply* keys = r->element[1];
  const uint64_t gen = generation_;
  for (size_t i = 0; i < keys->elements; ++i) {
    std::string_view key = reply_text(keys->element[i]);
    ++keys_scanned_;
    std::string_view dk = directory_key(key);
    if (is_tag(dk)) {
      s.tags.insert(std::string(dk));
      continue;
    }
    // Not sent (the main server went down during the scan): this key is looked at
    // again on the next pass.
    (void)c_.main().command({"HGET", MainStore::bucket_name(dk), dk},
                      [this, gen, node, k = std::string(dk)](redisReply* e) {
                        if (gen != generation_ || e == nullptr) return;
                        if (e->type == REDIS_REPLY_NIL) {
                          // A committed move's source copy not yet deleted is no orphan:
                          // adopting it would bring back a key deleted since on its new node.
                          std::string member = c_.nodes()[node].name() + '\n' + k;
                          (void)c_.main().command({"SISMEMBER", scripts::kMovesCleanKey, member},
                                            [this, gen, node, k](redisReply* m) {
                                              if (gen != generation_ || m == nullptr ||
                                                  m->type != REDIS_REPLY_INTEGER || m->integer != 0)
                                                return;
                                              spdlog::warn("sweep: key on node {} had no directory entry: given "
                                                           "one there", c_.nodes()[node].name());
                                              c_.adopt(k, node);
                                            });
                          return;
                        }
                        if (e->type != REDIS_REPLY_STRING) return;
                        std::string_view v = reply_text(e);
                        if (v.find(" M") != std::string_view::npos) return;  // moving: copies on both for a while
                        if (v.substr(0, v.find(' ')) != c_.nodes()[node].name()) {
                          auto& n = c_.counters_mut().misplaced;
                          if (n++ < 10)
                            spdlog::error("sweep: a key on node {} has its directory entry on another node ({}); "
                                          "that copy is not served",
                                          c_.nodes()[node].name(), v);
                        }
                      });
  }
  if (s.cursor == "0") {  // a complete scan of this node
    s.done_tags.swap(s.tags);
    s.tags.clear();
    s.done_seq = s.started_seq;
    s.done_barrier = s.started_barrier;
    s.done = true;
    s.started_seq = c_.store().applied_seq();
    s.started_barrier = c_.barrier();
    c_.node_scanned();
  }
}

std::optional<bool> Sweep::tag_seen(NodeIndex node, std::string_view tag, uint64_t seq) const {
  if (node >= scans_.size()) return std::nullopt;
  const NodeScan& s = scans_[node];
  if (!s.done || s.done_barrier < seq) return std::nullopt;
  return s.done_tags.count(std::string(tag)) > 0;
}

}  // namespace headroom::balancer
