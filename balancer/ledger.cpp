#include "balancer/ledger.h"

#include <algorithm>
#include <bit>
#include <spdlog/spdlog.h>

namespace headroom::balancer {

Ledger::Ledger(const NodeRegistry& nodes) : nodes_(nodes), fills_(nodes.size()) { refresh_fallback(); }

void Ledger::poll_sent(NodeIndex node) {
  Fill& f = fills_[node];
  f.growth_at_send = f.growth_total;
  f.others_settled = f.others_last_send;
  f.others_last_send = f.others_total;
}

void Ledger::poll_answered(NodeIndex node, const NodeFigures& figures, uint64_t now_ms) {
  Fill& f = fills_[node];
  const uint64_t used = figures.used_memory;
  const uint64_t settled = std::max(f.others_settled, f.others_base);
  const uint64_t expected = f.base + (f.growth_at_send - f.growth_base) + (settled - f.others_base);
  f.others_base = settled;
  if (!f.polled || used <= expected) {
    f.base = used;
    f.excesses.clear();
  } else {
    // More than expected: what has held over the whole of the last kTransientMs counts.
    f.excesses.emplace_back(now_ms, used - expected);
    while (f.excesses.size() > 1 && now_ms - f.excesses[1].first >= kTransientMs) f.excesses.pop_front();
    uint64_t held = 0;
    if (now_ms - f.excesses.front().first >= kTransientMs) {
      held = f.excesses.front().second;
      for (const auto& e : f.excesses) held = std::min(held, e.second);
    }
    f.base = expected + held;
  }
  f.figures = figures;
  f.polled = true;
  f.growth_base = f.growth_at_send;
  refresh_fallback();
}

// The capacity assumed for a node with neither maxmemory nor a configured capacity:
// the largest known, recomputed when a figure changes rather than at every placement.
void Ledger::refresh_fallback() {
  uint64_t best = 0;
  for (NodeIndex i = 0; i < fills_.size(); ++i) best = std::max(best, own_capacity(i));
  fallback_ = best != 0 ? best : (1ull << 30);
}

uint64_t Ledger::own_capacity(NodeIndex i) const {
  if (fills_[i].figures.maxmemory != 0) return fills_[i].figures.maxmemory;
  return nodes_[i].config.capacity;
}

namespace {
constexpr uint64_t kPerKeyOverhead = 64;

// jemalloc's size class for n bytes: 16 apart up to 128, then four per doubling.
uint64_t jemalloc_class(uint64_t n) {
  if (n <= 16) return 16;
  if (n <= 128) return (n + 15) & ~uint64_t{15};
  const int k = 63 - std::countl_zero(n - 1);  // 2^k < n <= 2^(k+1)
  const uint64_t step = uint64_t{1} << (k - 2);
  return (n + step - 1) & ~(step - 1);
}
}  // namespace

uint64_t Ledger::stored_bytes(NodeIndex node, uint64_t payload) const {
  return (fills_[node].figures.jemalloc ? jemalloc_class(payload) : payload) + kPerKeyOverhead;
}

Reservation Ledger::reserve(NodeIndex node, uint64_t payload) {
  const uint64_t bytes = stored_bytes(node, payload);
  fills_[node].reserved += bytes;
  return {node, bytes};
}

void Ledger::write_done(const Reservation& r, bool stored) {
  Fill& f = fills_[r.node];
  f.reserved -= std::min(f.reserved, r.bytes);
  if (stored) f.growth_total += r.bytes;
}

void Ledger::grown(NodeIndex node, uint64_t bytes) { fills_[node].growth_total += bytes; }

void Ledger::placed_elsewhere(NodeIndex node, uint64_t bytes) { fills_[node].others_total += bytes; }

uint64_t Ledger::growth_since_poll(NodeIndex node) const {
  const Fill& f = fills_[node];
  return f.growth_total - f.growth_base;
}

uint64_t Ledger::projected_bytes(NodeIndex node) const {
  const Fill& f = fills_[node];
  return f.base + growth_since_poll(node) + f.reserved + (f.others_total - f.others_base);
}

uint64_t Ledger::capacity(NodeIndex node) const {
  if (uint64_t c = own_capacity(node)) return c;
  return fallback_;
}

double Ledger::projected_fill(NodeIndex node) const {
  return static_cast<double>(projected_bytes(node)) / static_cast<double>(capacity(node));
}

}  // namespace headroom::balancer
