// The data nodes headroom fronts: each one's configuration and health (what the
// poller and the data path know of its reachability). Memory figures and projected
// fill live in the placement ledger (balancer/ledger.h).
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
  bool reachable = false;   // the poller's connection is up and its last poll answered in time
  bool backend_up = false;  // the data path has a live connection to it
  bool draining = false;    // drain: in the config or HEADROOM DRAIN (hr:draining on the main server): no new keys
  uint64_t drain_started_ms = 0;  // when this proxy saw the drain begin, and the node's keys then (progress)
  uint64_t drain_start_keys = 0;
  std::string redis_version;  // its INFO server's, read by the poller once it answers (INFO shows the lowest)
  // Its INFO persistence at the last poll (headroom's INFO persistence sums them up).
  struct Persistence {
    bool loading = false;
    bool aof_enabled = false;
    bool aof_rewrite_in_progress = false;
    bool aof_rewrite_scheduled = false;
    bool rdb_bgsave_in_progress = false;
    uint64_t rdb_changes_since_last_save = 0;
  } persistence;
  // A CONFIG SET through headroom that starts persistence work (appendonly) bumps
  // `persistence_changes`; a poll sent after it answers with `persistence_seen` equal
  // to it. Until then the last figures predate it: INFO says a rewrite is in progress.
  uint64_t persistence_changes = 0;
  uint64_t persistence_seen = 0;

  const std::string& name() const { return config.name; }
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
  // A node added by a reload: the next index (indexes never change while running).
  NodeIndex add(const conf::BackendConfig& config);

 private:
  std::vector<NodeState> nodes_;
};

}  // namespace headroom::balancer
