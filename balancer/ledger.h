// The placement ledger: the one owner of each data node's projected fill, the figure
// placement compares. For each node:
//
//   projected bytes = the node's bytes at the last answered poll
//                   + growth: bytes of writes answered since that poll was sent
//                   + reserved: bytes of new keys placed whose writes are not answered yet
//                   + others: bytes other proxies placed there, not yet in a poll
//
// Other proxies' placements come from the change stream, ahead of their writes, with
// no word of when those are answered: a poll is taken to include them when they were
// announced before the poll preceding it was sent (a whole interval earlier). Without
// them each proxy saw only its own writes between polls, and every proxy sent its
// burst to the same emptiest node.
//
// A poll's used_memory is exact, but it may hold a transient: a large value being
// received, or the query buffer it came in, kept after the value was copied out
// (Redis trims it at a later cron pass, 100 ms to a second on; mem_clients_normal,
// refreshed lazily, does not say). Taken as is, one such poll shuns the node until
// the next: a 7 MB value counted twice. So a poll is read against what this proxy
// expected (the last poll's bytes, the growth answered before this poll was sent,
// others' placements a poll interval old): less than that is taken at once; more
// (the excess: growth not counted, a transient) only as much as every poll of the
// last kTransientMs showed, once the excess has lasted that long.
//
// A new key's bytes are reserved when it is placed and move to growth when its
// write is answered, so from placement to the poll that includes them they count
// exactly once. A poll's answer may or may not include a write answered after the
// poll was sent (the poll travels on another connection), so such writes stay in
// growth until the next poll: they are never left out, at worst counted once
// more for one poll interval.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "balancer/node_registry.h"

namespace headroom::balancer {

// A node's figures as its INFO gives them.
struct NodeFigures {
  uint64_t used_memory = 0;
  uint64_t maxmemory = 0;
  uint64_t keys = 0;
  bool jemalloc = false;  // mem_allocator: Redis's default; its size classes are known
  bool evicts = false;    // at maxmemory it evicts to make room (maxmemory_policy), not OOM
};

// Bytes reserved on a node for a new key; given back to Ledger::write_done.
struct Reservation {
  NodeIndex node = 0;
  uint64_t bytes = 0;
};

class Ledger {
 public:
  explicit Ledger(const NodeRegistry& nodes);

  // --- the memory poller
  // A poll of `node` is sent now.
  void poll_sent(NodeIndex node);
  // The answer to the last poll sent: the node's figures at some moment after it left;
  // `now_ms`: the loop's clock.
  void poll_answered(NodeIndex node, const NodeFigures& figures, uint64_t now_ms);
  static constexpr uint64_t kTransientMs = 1000;

  // --- placement and the data path
  // A new key whose write carries `payload` bytes (its share of the request) is being
  // placed on `node`: what it will take there is reserved (see stored_bytes).
  Reservation reserve(NodeIndex node, uint64_t payload);
  // The bytes a new key with `payload` bytes takes on `node`: the payload in the
  // allocator's size class (jemalloc rounds a 7.1 MB value up to 8 MiB, so a node
  // with a few large values fills well beyond their lengths), plus the per-key
  // structures (dict entry, key, object header).
  uint64_t stored_bytes(NodeIndex node, uint64_t payload) const;
  // The write that creates a reserved key was answered (`stored`: not an error), or
  // will never be sent (false): the reservation ends.
  void write_done(const Reservation& r, bool stored);
  // A write that may have grown `node` by `bytes` was answered.
  void grown(NodeIndex node, uint64_t bytes);
  // Another proxy placed new keys of `bytes` on `node` (the main server's change
  // stream says so before that proxy writes them). They count from now; a poll is
  // expected to include them once a whole poll interval has passed.
  void placed_elsewhere(NodeIndex node, uint64_t bytes);

  // A node's configured capacity changed (a reload).
  void capacities_changed() { refresh_fallback(); }
  // A node was added (a reload): it is counted once polled.
  void node_added() {
    fills_.emplace_back();
    refresh_fallback();
  }

  // --- reading
  bool polled(NodeIndex node) const { return fills_[node].polled; }
  const NodeFigures& figures(NodeIndex node) const { return fills_[node].figures; }
  uint64_t reserved(NodeIndex node) const { return fills_[node].reserved; }
  uint64_t growth_since_poll(NodeIndex node) const;
  // Every byte headroom put on the node since this proxy started: its own writes
  // (answered and in flight) and other proxies' placements.
  uint64_t placed_total(NodeIndex node) const {
    const Fill& f = fills_[node];
    return f.growth_total + f.reserved + f.others_total;
  }
  uint64_t projected_bytes(NodeIndex node) const;
  // What the node may hold: maxmemory, else the configured capacity, else the largest
  // capacity known for any node, else 1 GiB.
  uint64_t capacity(NodeIndex node) const;
  double projected_fill(NodeIndex node) const;
  size_t size() const { return fills_.size(); }

 private:
  struct Fill {
    bool polled = false;
    NodeFigures figures;
    uint64_t base = 0;    // the node's bytes at the last answered poll (see above)
    // The polls of the current run of excess over expectation, (when, how much), oldest
    // first; those older than kTransientMs are dropped but for the newest of them.
    std::deque<std::pair<uint64_t, uint64_t>> excesses;
    uint64_t reserved = 0;
    uint64_t growth_total = 0;    // every byte of growth ever answered
    uint64_t growth_base = 0;     // growth_total when the poll behind `figures` was sent
    uint64_t growth_at_send = 0;  // growth_total when the poll in flight was sent
    uint64_t others_total = 0;    // every byte other proxies placed here
    uint64_t others_base = 0;     // what of it the last answered poll includes
    uint64_t others_last_send = 0;  // others_total when the last poll was sent
    uint64_t others_settled = 0;    // others_total when the poll before that was sent
  };
  uint64_t own_capacity(NodeIndex node) const;
  void refresh_fallback();

  const NodeRegistry& nodes_;
  std::vector<Fill> fills_;
  uint64_t fallback_ = 1ull << 30;
};

}  // namespace headroom::balancer
