#include "balancer/placement.h"

namespace headroom::balancer {

double projected_fill(const NodeState& node, uint64_t fallback_capacity) {
  double cap = static_cast<double>(node.capacity(fallback_capacity));
  return static_cast<double>(node.used_memory + node.written_since_poll + node.reserved_bytes) / cap;
}

std::optional<NodeIndex> choose_node(const NodeRegistry& nodes) {
  uint64_t fallback = nodes.fallback_capacity();
  std::optional<NodeIndex> best;
  double best_fill = 0;
  for (const auto& n : nodes.all()) {
    if (!n.reachable || !n.polled || !n.backend_up) continue;
    double fill = projected_fill(n, fallback);
    if (fill >= kFullFill) continue;  // a full node would only answer OOM
    if (!best || fill < best_fill) {
      best = n.index;
      best_fill = fill;
    }
  }
  return best;
}

}  // namespace headroom::balancer
