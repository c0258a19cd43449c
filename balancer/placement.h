// The placement policy: a new key goes to the reachable data node with the most free
// memory relative to its size, i.e. the lowest projected fill
//     (used_memory + bytes written since that figure was read
//      + bytes of new keys placed whose writes are still on their way) / capacity.
// With equal sizes this is the node with the most free bytes; with different sizes
// nodes fill in proportion. Counting the bytes written since the last poll keeps a
// burst of new keys from all landing on one node between polls.
#pragma once

#include <optional>

#include "balancer/node_registry.h"

namespace headroom::balancer {

// A node this full (projected) gets no new keys: Redis would refuse them with OOM.
inline constexpr double kFullFill = 0.98;

// Picks the node for a new key among nodes that are reachable (poller), connected
// (data path) and not full; nullopt when there is none.
std::optional<NodeIndex> choose_node(const NodeRegistry& nodes);

// Projected fill of one node, as choose_node sees it (for INFO and tests).
double projected_fill(const NodeState& node, uint64_t fallback_capacity);

}  // namespace headroom::balancer
