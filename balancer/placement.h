// The placement policy: a new key goes to the reachable data node with the most free
// memory relative to its size, i.e. the lowest projected fill (balancer/ledger.h).
// With equal sizes this is the node with the most free bytes; with different sizes
// nodes fill in proportion.
//
// A node that evicts at maxmemory (allkeys-*, or volatile-* while keys have TTLs)
// keeps taking new keys when full: on a cache every node sits at maxmemory, and each
// new key makes its node evict. Its polls then say nothing of what it took (each
// finds it back near maxmemory, a little above or below), so among full nodes
// "most free memory" means the fewest bytes headroom has put there (Ledger::
// placed_total, a node far behind counted as behind by 1/16 of its capacity at
// most): new bytes, and the evictions they cause, spread evenly over the full
// nodes; a node not yet full still goes first.
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
