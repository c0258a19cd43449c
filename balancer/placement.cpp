#include "balancer/placement.h"

#include <algorithm>

namespace headroom::balancer {

namespace {
// A node that may take a new key at all: reachable, connected, polled, not draining.
bool open_for_keys(const NodeState& n, const Ledger& ledger) {
  return n.reachable && n.backend_up && !n.draining && ledger.polled(n.index);
}
// A full node that evicts: it takes new keys, each making it evict (a full one that
// does not would only answer OOM).
bool full_and_evicting(const NodeState& n, const Ledger& ledger) {
  return ledger.figures(n.index).evicts && ledger.projected_fill(n.index) >= kFullFill;
}
}  // namespace

std::optional<NodeIndex> choose_node(const NodeRegistry& nodes, const Ledger& ledger) {
  std::optional<NodeIndex> best;
  double best_fill = 0;
  bool any_full = false;     // a full node that evicts can take the key
  uint64_t most_placed = 0;  // the most bytes put on any of those
  for (const auto& n : nodes.all()) {
    if (!open_for_keys(n, ledger)) continue;
    const double fill = ledger.projected_fill(n.index);
    if (fill >= kFullFill) {
      if (full_and_evicting(n, ledger)) {
        any_full = true;
        most_placed = std::max(most_placed, ledger.placed_total(n.index));
      }
      continue;
    }
    if (!best || fill < best_fill) {
      best = n.index;
      best_fill = fill;
    }
  }
  if (best || !any_full) return best;
  // Every node that can take it is full and evicts: the one headroom has put the fewest
  // bytes on so far. A node far behind (added, or full only lately) counts as behind
  // by 1/16 of its capacity at most, so it shares new keys rather than taking them all.
  uint64_t best_placed = 0;
  for (const auto& n : nodes.all()) {
    if (!open_for_keys(n, ledger) || !full_and_evicting(n, ledger)) continue;
    const uint64_t lag = ledger.capacity(n.index) / 16;
    const uint64_t placed = std::max(ledger.placed_total(n.index), most_placed > lag ? most_placed - lag : 0);
    if (!best || placed < best_placed) {
      best = n.index;
      best_placed = placed;
    }
  }
  return best;
}

}  // namespace headroom::balancer
