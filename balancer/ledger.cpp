#include "balancer/ledger.h"

#include <algorithm>

namespace headroom::balancer {

Ledger::Ledger(const NodeRegistry& nodes) : nodes_(nodes), fills_(nodes.size()) { refresh_fallback(); }

void Ledger::poll_sent(NodeIndex node) {
  Fill& f = fills_[node];
  f.growth_at_send = f.growth_total;
}

void Ledger::poll_answered(NodeIndex node, const NodeFigures& figures) {
  Fill& f = fills_[node];
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

Reservation Ledger::reserve(NodeIndex node, uint64_t bytes) {
  fills_[node].reserved += bytes;
  return {node, bytes};
}

void Ledger::write_done(const Reservation& r, bool stored) {
  Fill& f = fills_[r.node];
  f.reserved -= std::min(f.reserved, r.bytes);
  if (stored) f.growth_total += r.bytes;
}

void Ledger::grown(NodeIndex node, uint64_t bytes) { fills_[node].growth_total += bytes; }

uint64_t Ledger::growth_since_poll(NodeIndex node) const {
  const Fill& f = fills_[node];
  return f.growth_total - f.growth_base;
}

uint64_t Ledger::projected_bytes(NodeIndex node) const {
  const Fill& f = fills_[node];
  return f.figures.used_memory + growth_since_poll(node) + f.reserved;
}

uint64_t Ledger::capacity(NodeIndex node) const {
  if (uint64_t c = own_capacity(node)) return c;
  return fallback_;
}

double Ledger::projected_fill(NodeIndex node) const {
  return static_cast<double>(projected_bytes(node)) / static_cast<double>(capacity(node));
}

}  // namespace headroom::balancer
