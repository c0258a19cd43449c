#include "balancer/rebalancer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <numeric>
#include <unordered_set>

#include "balancer/coordinator.h"
#include "balancer/directory.h"
#include "balancer/directory_scripts.h"
#include "balancer/ledger.h"
#include "balancer/main_store.h"
#include "balancer/mover.h"

namespace headroom::balancer {

namespace {
constexpr uint64_t kAskedPollMs = 200;
constexpr size_t kSampleKeys = 256;     // a rebalance: enough to choose large keys from
constexpr size_t kDrainSampleKeys = 1024;  // a drain takes them all
constexpr size_t kMaxBatchKeys = 1024;
constexpr uint64_t kMaxBatchBytes = 16ull << 20;
constexpr uint64_t kMinBytes = 64 * 1024;  // imbalances smaller than this are noise in used_memory
}  // namespace

MovePlan plan_move(std::span<const NodeLoad> nodes, double threshold, uint64_t min_bytes) {
  MovePlan plan;
  int emptiest = -1;
  double emptiest_fill = 0;
  uint64_t used = 0, size = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeLoad& n = nodes[i];
    if (!n.usable || n.draining || n.size == 0) continue;
    const double fill = static_cast<double>(n.used) / static_cast<double>(n.size);
    if (emptiest < 0 || fill < emptiest_fill) emptiest = static_cast<int>(i), emptiest_fill = fill;
    used += n.used;
    size += n.size;
  }
  if (emptiest < 0) return plan;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].usable && nodes[i].draining && nodes[i].keys > 0) {
      plan.from = static_cast<int>(i);
      plan.to = emptiest;
      plan.bytes = UINT64_MAX;
      return plan;
    }
  }
  const double mean = static_cast<double>(used) / static_cast<double>(size);
  int fullest = -1;
  double fullest_fill = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeLoad& n = nodes[i];
    if (!n.usable || n.draining || n.size == 0) continue;
    const double fill = static_cast<double>(n.used) / static_cast<double>(n.size);
    if (fullest < 0 || fill > fullest_fill) fullest = static_cast<int>(i), fullest_fill = fill;
  }
  if (fullest == emptiest || fullest_fill <= mean * (1 + threshold)) return plan;
  const double excess = (fullest_fill - mean) * static_cast<double>(nodes[static_cast<size_t>(fullest)].size);
  const double room = (mean - emptiest_fill) * static_cast<double>(nodes[static_cast<size_t>(emptiest)].size);
  const auto bytes = static_cast<uint64_t>(std::min(excess, room));
  if (bytes < min_bytes) return plan;
  plan.from = fullest;
  plan.to = emptiest;
  plan.bytes = bytes;
  return plan;
}

std::vector<size_t> choose_keys(std::span<const uint64_t> sizes, uint64_t want, uint64_t max_key_bytes,
                                size_t max_keys) {
  std::vector<size_t> order(sizes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<size_t> chosen;
  uint64_t left = want;
  for (size_t i : order) {
    if (chosen.size() >= max_keys) break;
    if (sizes[i] > max_key_bytes || sizes[i] > left) continue;
    chosen.push_back(i);
    left -= sizes[i];
  }
  return chosen;
}

Rebalancer::Rebalancer(Coordinator& c, Mover& mover, const Ledger& ledger, const conf::Config& config)
    : c_(c), mover_(mover), ledger_(ledger), config_(config) {}

void Rebalancer::begin() {
  active_ = true;
  ++gen_;
  cursors_.assign(c_.nodes().size(), "0");
  asked_.clear();
  asked_in_flight_ = sampling_ = false;
  ready_.reset();
}

void Rebalancer::end() {
  active_ = false;
  ++gen_;
  asked_.clear();
  ready_.reset();
}

std::vector<NodeLoad> Rebalancer::loads() const {
  std::vector<NodeLoad> out(c_.nodes().size());
  for (NodeIndex i = 0; i < out.size(); ++i) {
    const auto& f = ledger_.figures(i);
    out[i].used = f.used_memory;
    out[i].size = ledger_.capacity(i);
    out[i].keys = f.keys;
    out[i].usable = c_.nodes()[i].reachable && ledger_.polled(i) && c_.node_conn(i) != nullptr;
    out[i].draining = c_.nodes()[i].draining;
  }
  return out;
}

void Rebalancer::tick() {
  if (!active_) return;
  const uint64_t now = uv_now(c_.loop());
  if (now - last_asked_poll_ms_ >= kAskedPollMs) {
    last_asked_poll_ms_ = now;
    poll_asked();
  }
  if (mover_.busy()) {
    batch_running_ = true;
    if (draining_batch_ && !sampling_ && !ready_) {
      const MovePlan plan = plan_move(loads(), config_.rebalance.threshold, kMinBytes);
      if (plan.from >= 0 && plan.bytes == UINT64_MAX) sample(plan);
    }
    return;
  }
  if (ready_) {
    start_ready();
    return;
  }
  if (batch_running_) {
    // A rebalance plans its next batch on figures that show this one (two polls).
    batch_running_ = false;
    if (!draining_batch_) next_ms_ = std::max(next_ms_, now + 2 * uint64_t{config_.poll_interval_ms});
  }
  if (sampling_ || now < next_ms_) return;
  if (!asked_.empty()) {
    move_asked();
    return;
  }
  const auto l = loads();
  bool any_draining = false;
  for (const auto& n : l) any_draining |= n.draining && n.keys > 0;
  if (!config_.rebalance.enabled && !forced_ && !any_draining) return;
  const MovePlan plan = plan_move(l, config_.rebalance.threshold, kMinBytes);
  if (plan.from < 0) {
    if (forced_) spdlog::info("rebalancer: balanced (every node within {} of the mean fill)", config_.rebalance.threshold);
    forced_ = false;
    return;
  }
  if (plan.bytes != UINT64_MAX && !config_.rebalance.enabled && !forced_) return;  // only the drain goes on
  sample(plan);
}

// HEADROOM MOVE and REBALANCE, from any proxy: "rebalance", or "move <node> <dir key>".
void Rebalancer::poll_asked() {
  if (asked_in_flight_ || !c_.main().up()) return;
  const uint64_t gen = gen_;
  asked_in_flight_ = c_.main().command({"LPOP", scripts::kAskedKey, "64"}, [this, gen](redisReply* r) {
    if (gen != gen_) return;
    asked_in_flight_ = false;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i < r->elements; ++i) {
      std::string_view a = reply_text(r->element[i]);
      ++counters_.asked;
      if (a == "rebalance") {
        forced_ = true;
        next_ms_ = 0;
        continue;
      }
      if (!a.starts_with("move ")) continue;
      a.remove_prefix(5);
      const size_t sp = a.find(' ');
      if (sp == std::string_view::npos) continue;
      if (auto to = c_.nodes().find(a.substr(0, sp))) asked_.push_back({std::string(a.substr(sp + 1)), *to});
    }
  });
}

// Asked moves: those to the first one's destination, as one batch per source (the
// largest group; the rest stay asked).
void Rebalancer::move_asked() {
  // Each entry is read there first: with the connection down the reads would never be
  // answered (and sampling_ never cleared), so the asked moves wait for it.
  if (!c_.main().up()) return;
  const NodeIndex to = asked_.front().to;
  auto batch = std::make_shared<std::vector<Asked>>();
  for (auto it = asked_.begin(); it != asked_.end() && batch->size() < kMaxBatchKeys;) {
    if (it->to == to) {
      batch->push_back(std::move(*it));
      it = asked_.erase(it);
    } else {
      ++it;
    }
  }
  sampling_ = true;
  const uint64_t gen = gen_;
  auto left = std::make_shared<size_t>(batch->size());
  auto from = std::make_shared<std::vector<int>>(batch->size(), -1);
  for (size_t i = 0; i < batch->size(); ++i) {
    const std::string& dk = (*batch)[i].dir_key;
    // The main server is up (checked above): every read of this loop is sent.
    (void)c_.main().command({"HGET", MainStore::bucket_name(dk), dk}, [this, gen, batch, left, from, i,
                                                                       to](redisReply* r) {
      if (gen != gen_) return;
      scripts::EntryValue ev;
      if (r != nullptr && r->type == REDIS_REPLY_STRING && scripts::parse_entry_value(reply_text(r), ev))
        if (auto n = c_.nodes().find(ev.node); n && *n != to) (*from)[i] = *n;
      if (--*left != 0) return;
      sampling_ = false;
      std::vector<size_t> per_node(c_.nodes().size(), 0);
      for (int n : *from)
        if (n >= 0) ++per_node[static_cast<size_t>(n)];
      const auto src = static_cast<NodeIndex>(std::max_element(per_node.begin(), per_node.end()) - per_node.begin());
      if (per_node[src] == 0) return;
      std::vector<std::string> keys;
      for (size_t k = 0; k < batch->size(); ++k) {
        if ((*from)[k] == src)
          keys.push_back((*batch)[k].dir_key);
        else if ((*from)[k] >= 0)
          asked_.push_back((*batch)[k]);  // another source: a later batch
      }
      if (!mover_.start(src, to, keys))
        for (auto& k : keys) asked_.push_front({std::move(k), to});  // not now: tried again next tick
    });
  }
}

void Rebalancer::sample(const MovePlan& plan) {
  ControlConn* src = c_.node_conn(static_cast<NodeIndex>(plan.from));
  if (src == nullptr) return;
  ++counters_.passes;
  const uint64_t gen = gen_;
  const auto from = static_cast<NodeIndex>(plan.from);
  const size_t count = plan.bytes == UINT64_MAX ? kDrainSampleKeys : kSampleKeys;
  sampling_ = src->command({"SCAN", cursors_[from], "COUNT", std::to_string(count)}, [this, gen, plan,
                                                                                      from](redisReply* r) {
    if (gen != gen_) return;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY) {
      sampling_ = false;
      return;
    }
    cursors_[from] = std::string(reply_text(r->element[0]));
    const redisReply* keys = r->element[1];
    auto names = std::make_shared<std::vector<std::string>>();
    for (size_t i = 0; i < keys->elements; ++i) names->emplace_back(reply_text(keys->element[i]));
    if (names->empty()) {
      sampling_ = false;
      return;
    }
    auto sizes = std::make_shared<std::vector<uint64_t>>(names->size(), 0);
    auto left = std::make_shared<size_t>(names->size());
    ControlConn* conn = c_.node_conn(from);
    if (conn == nullptr) {
      sampling_ = false;
      return;
    }
    for (size_t i = 0; i < names->size(); ++i) {
      // Up (node_conn, just checked): every one of this loop is sent.
      (void)conn->command({"MEMORY", "USAGE", (*names)[i]}, [this, gen, plan, names, sizes, left, i](redisReply* m) {
        if (gen != gen_) return;
        if (m != nullptr && m->type == REDIS_REPLY_INTEGER) (*sizes)[i] = static_cast<uint64_t>(m->integer);
        if (--*left == 0) sampled(plan, std::move(*names), std::move(*sizes));
      });
    }
  });
}

void Rebalancer::sampled(const MovePlan& plan, std::vector<std::string> keys, std::vector<uint64_t> sizes) {
  sampling_ = false;
  const auto& rb = config_.rebalance;
  const uint64_t batch_bytes = std::max<uint64_t>(1, std::min<uint64_t>(kMaxBatchBytes, rb.max_bytes_per_s / 4));
  const size_t batch_keys = std::max<size_t>(1, std::min<size_t>(kMaxBatchKeys, rb.max_keys_per_s / 4));
  for (uint64_t s : sizes)
    if (s > rb.max_key_bytes) ++counters_.skipped_large;
  // A drain takes everything that fits a batch; a rebalance what the plan asks for.
  const uint64_t want = std::min(plan.bytes, batch_bytes);
  std::vector<size_t> chosen = choose_keys(sizes, want, rb.max_key_bytes, batch_keys);
  if (chosen.empty() && plan.bytes == UINT64_MAX) {
    // A drain whose sample holds only keys larger than a batch: one at a time.
    for (size_t i = 0; i < sizes.size() && chosen.empty(); ++i)
      if (sizes[i] <= rb.max_key_bytes) chosen.push_back(i);
  }
  std::vector<std::string> dir_keys;
  std::unordered_set<std::string_view> seen;
  uint64_t bytes = 0;
  for (size_t i : chosen) {
    std::string_view dk = directory_key(keys[i]);
    if (!seen.insert(dk).second) continue;
    dir_keys.emplace_back(dk);
    bytes += sizes[i];
  }
  const auto from = static_cast<NodeIndex>(plan.from), to = static_cast<NodeIndex>(plan.to);
  if (dir_keys.empty()) {
    // Nothing in this sample fits what is left (every key larger than the excess): after
    // a whole pass of the source like that, the plan is as good as it gets for now.
    if (cursors_[from] == "0" && ++fruitless_passes_ >= 1) {
      fruitless_passes_ = 0;
      if (forced_) spdlog::info("rebalancer: no key on {} fits its excess: as balanced as its keys allow",
                                c_.nodes()[from].name());
      forced_ = false;
      next_ms_ = uv_now(c_.loop()) + 10000;
    }
    return;
  }
  fruitless_passes_ = 0;
  if (mover_.busy() && plan.bytes != UINT64_MAX) return;  // the mover took other work: planned again
  draining_batch_ = plan.bytes == UINT64_MAX;
  ready_ = Ready{from, to, std::move(dir_keys), bytes, chosen.size()};
  if (!mover_.busy()) start_ready();
}

void Rebalancer::start_ready() {
  const auto& rb = config_.rebalance;
  const uint64_t now = uv_now(c_.loop());
  if (now < next_ms_) return;
  Ready r = std::move(*ready_);
  ready_.reset();
  // A drain's batch chosen ahead: only while its node still drains to that destination.
  if (draining_batch_) {
    const MovePlan plan = plan_move(loads(), rb.threshold, kMinBytes);
    if (plan.bytes != UINT64_MAX || plan.from != static_cast<int>(r.from) || plan.to != static_cast<int>(r.to)) return;
  }
  if (!mover_.start(r.from, r.to, std::move(r.dir_keys))) return;
  counters_.bytes_chosen += r.bytes;
  // Pacing: this batch's share of each rate.
  const uint64_t ms = std::max<uint64_t>(r.keys * 1000 / rb.max_keys_per_s, r.bytes * 1000 / rb.max_bytes_per_s);
  next_ms_ = now + ms;
  batch_running_ = true;
}

}  // namespace headroom::balancer
