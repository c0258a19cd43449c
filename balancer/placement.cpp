#include "balancer/placement.h"

namespace headroom::balancer {

std::optional<NodeIndex> choose_node(const NodeRegistry& nodes, const Ledger& ledger) {
  std::optional<NodeIndex> best;
  double best_fill = 0;
  for (const auto& n : nodes.all()) {
    if (!n.reachable || !n.backend_up || n.draining || !ledger.polled(n.index)) continue;
    double fill = ledger.projected_fill(n.index);
    if (fill >= kFullFill && !ledger.figures(n.index).evicts) continue;  // it would only answer OOM
    if (!best || fill < best_fill) {
      best = n.index;
      best_fill = fill;
    }
  }
  return best;
}

}  // namespace headroom::balancer
