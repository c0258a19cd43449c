// The placement policy: a new key goes to the reachable data node with the most free
// memory relative to its size, i.e. the lowest projected fill (balancer/ledger.h).
// With equal sizes this is the node with the most free bytes; with different sizes
// nodes fill in proportion.
#pragma once

#include <optional>

#include "balancer/ledger.h"
#include "balancer/node_registry.h"

namespace headroom::balancer {

// A node this full (projected) gets no new keys: Redis would refuse them with OOM.
inline constexpr double kFullFill = 0.98;

// Picks the node for a new key among nodes that are reachable (poller), connected
// (data path), polled and not full; nullopt when there is none.
std::optional<NodeIndex> choose_node(const NodeRegistry& nodes, const Ledger& ledger);

}  // namespace headroom::balancer
