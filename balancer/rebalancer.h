// The rebalancer (docs/moves.md): decides what the mover moves. Run by the
// coordinator, so one at a time across every proxy. In turn, each pass:
//
//   1. what HEADROOM asked (HEADROOM MOVE, REBALANCE), through a list on the main server;
//   2. a draining node with keys: its keys go to the emptiest node;
//   3. with rebalance.enabled (or after HEADROOM REBALANCE until balanced): the node
//      whose fill is furthest above the mean, past the threshold, gives the emptiest
//      node the bytes by which it exceeds the mean (or the destination lacks, if less);
//      keys are chosen from a sample (SCAN, MEMORY USAGE), largest first among those
//      that fit what is left, so few moves fix much and the bytes moved never exceed
//      what the plan asked for.
//
// Keys larger than rebalance.max_key_bytes are not moved (one DUMP or RESTORE of them
// would block a node for too long): they are counted and reported (INFO, HEADROOM NODES).
// Moves are paced by max_keys_per_s and max_bytes_per_s.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "balancer/node_registry.h"
#include "conf/config.h"

namespace headroom::balancer {

class Coordinator;
class Ledger;
class Mover;

// --- the policy (pure, unit-tested) ---------------------------------------------------

struct NodeLoad {
  uint64_t used = 0;   // bytes (INFO used_memory)
  uint64_t size = 0;   // maxmemory, or the configured capacity
  uint64_t keys = 0;   // keys in database 0
  bool usable = false;  // reachable and polled
  bool draining = false;
};

struct MovePlan {
  int from = -1;  // -1: nothing to do
  int to = -1;
  uint64_t bytes = 0;  // how much to move (UINT64_MAX: everything, a drain)
};

// A draining node that has keys first (to the emptiest node that is not draining);
// else the fullest node if its fill exceeds the mean by more than `threshold`
// (relative), giving the emptiest min(its excess, the emptiest's shortfall), if that
// is at least `min_bytes`.
MovePlan plan_move(std::span<const NodeLoad> nodes, double threshold, uint64_t min_bytes);

// Which candidates (their sizes in bytes) to move for `want` bytes: the largest first
// among those that fit what is left and are at most `max_key_bytes`, at most
// `max_keys` of them. Their total never exceeds `want`.
std::vector<size_t> choose_keys(std::span<const uint64_t> sizes, uint64_t want, uint64_t max_key_bytes,
                                size_t max_keys);

// --- the driver -------------------------------------------------------------------------

struct RebalancerCounters {
  uint64_t passes = 0;         // samples taken
  uint64_t skipped_large = 0;  // keys seen larger than max_key_bytes (not moved)
  uint64_t asked = 0;          // HEADROOM requests taken
  uint64_t bytes_chosen = 0;   // MEMORY USAGE of the keys given to the mover (what moves in memory)
};

class Rebalancer {
 public:
  Rebalancer(Coordinator& c, Mover& mover, const Ledger& ledger, const conf::Config& config);

  void tick();
  void begin();
  void end();
  void node_added() { cursors_.push_back("0"); }
  const RebalancerCounters& counters() const { return counters_; }
  bool forced() const { return forced_; }

 private:
  struct Asked {
    std::string dir_key;
    NodeIndex to;
  };
  void poll_asked();
  void move_asked();
  void sample(const MovePlan& plan);
  void sampled(const MovePlan& plan, std::vector<std::string> keys, std::vector<uint64_t> sizes);
  void start_ready();
  std::vector<NodeLoad> loads() const;

  Coordinator& c_;
  Mover& mover_;
  const Ledger& ledger_;
  const conf::Config& config_;
  bool active_ = false;
  bool forced_ = false;  // HEADROOM REBALANCE: balance now, even when not enabled
  bool asked_in_flight_ = false;
  bool sampling_ = false;
  bool batch_running_ = false;  // a batch of ours is (or was, at the last tick) with the mover
  bool draining_batch_ = false;
  uint32_t fruitless_passes_ = 0;  // whole SCANs of the source that found nothing to move
  uint64_t gen_ = 0;
  uint64_t last_asked_poll_ms_ = 0;
  uint64_t next_ms_ = 0;  // pacing: no batch begins before this
  std::deque<Asked> asked_;
  // A drain's next batch, chosen while the mover runs the current one (the sample,
  // a SCAN and MEMORY USAGE of its keys, no longer sits between batches).
  struct Ready {
    NodeIndex from = 0, to = 0;
    std::vector<std::string> dir_keys;
    uint64_t bytes = 0;
    size_t keys = 0;
  };
  std::optional<Ready> ready_;
  std::vector<std::string> cursors_;  // per node: where its sampling SCAN is
  RebalancerCounters counters_;
};

}  // namespace headroom::balancer
