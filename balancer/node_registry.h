// The data nodes headroom fronts, and what is known of each: the configuration, the
// memory figures the poller last read, and the bytes placed on it since that read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace headroom::balancer {

using NodeIndex = uint16_t;

struct NodeState {
  NodeIndex index = 0;
  conf::BackendConfig config;

  // From the last `INFO memory keyspace` poll.
  bool polled = false;
  bool reachable = false;      // the poller's connection is up and its last poll answered in time
  bool backend_up = false;     // the data path has a live connection to it
  uint64_t used_memory = 0;
  uint64_t maxmemory = 0;
  uint64_t keys = 0;

  // Placement correction: bytes this proxy sent to the node since the poll whose
  // figures are in used_memory (see MemoryPoller for how the window is kept).
  uint64_t written_since_poll = 0;
  uint64_t written_total = 0;
  // Bytes of new keys placed on the node whose writes have not completed yet: they
  // may reach the node after the next poll's figures, so the poll window cannot
  // account for them; released when the placing request completes.
  uint64_t reserved_bytes = 0;

  const std::string& name() const { return config.name; }

  // What the node may hold: maxmemory, else the configured capacity, else `fallback`.
  uint64_t capacity(uint64_t fallback) const {
    if (maxmemory != 0) return maxmemory;
    if (config.capacity != 0) return config.capacity;
    return fallback;
  }
};

class NodeRegistry {
 public:
  explicit NodeRegistry(const std::vector<conf::BackendConfig>& nodes);

  size_t size() const { return nodes_.size(); }
  NodeState& operator[](NodeIndex i) { return nodes_[i]; }
  const NodeState& operator[](NodeIndex i) const { return nodes_[i]; }
  std::vector<NodeState>& all() { return nodes_; }
  const std::vector<NodeState>& all() const { return nodes_; }

  std::optional<NodeIndex> find(std::string_view name) const;

  // The capacity assumed for a node with neither maxmemory nor a configured capacity:
  // the largest capacity known for any other node, or 1 GiB.
  uint64_t fallback_capacity() const;

 private:
  std::vector<NodeState> nodes_;
};

}  // namespace headroom::balancer
