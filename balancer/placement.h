// The placement policy: a new key goes to the reachable data node with the most free
// memory relative to its size, i.e. the lowest projected fill (balancer/ledger.h).
// With equal sizes this is the node with the most free bytes; with different sizes
// nodes fill in proportion.
//
// A node that evicts at maxmemory (allkeys-*, or volatile-* while keys have TTLs)
// keeps taking new keys when full: on a cache every node sits at maxmemory, and each
// new key makes its node evict. "Most free memory" then means the fewest bytes
// placed there since its last poll (each poll finds it back at maxmemory), so new
// bytes, and the evictions they cause, spread evenly over the full nodes; a node
// not yet full still goes first.
#pragma once

#include <optional>

#include "balancer/ledger.h"
#include "balancer/node_registry.h"

namespace headroom::balancer {

// A node this full (projected) that does not evict gets no new keys: Redis would
// refuse them with OOM.
inline constexpr double kFullFill = 0.98;

// Picks the node for a new key among nodes that are reachable (poller), connected
// (data path), polled and not full; nullopt when there is none.
std::optional<NodeIndex> choose_node(const NodeRegistry& nodes, const Ledger& ledger);

}  // namespace headroom::balancer
