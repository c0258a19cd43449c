// The coordinator's sweep: the backstop for what keyevent notifications miss (a
// connection that was down, a coordinator that changed, keys changed behind
// headroom's back). Two passes run side by side, forever, at a bounded rate:
//
//   entries: every bucket of the directory in turn. A retiring entry (marked, or older
//     than the last FLUSHALL) is handed to the coordinator to settle; a live entry's
//     key is checked on its node and, if absent, retired. A tag's entry is retired
//     when the last complete scan of its node (started after the entry was written)
//     found no key with the tag, and removed only when a later scan, started after
//     the barrier passed its retirement, found none either (tag_seen).
//   keys: every data node's keys, with SCAN. A key whose entry is missing gets one on
//     that node (an orphan, adopted); a key whose entry names another node is counted
//     and logged (misplaced: the directory's node is authoritative, so that copy is
//     not served, and is left for an operator rather than deleted).
//
// After a FLUSHALL the entries pass starts over at once and runs at full speed, so
// the directory empties within seconds.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <hiredis/hiredis.h>

#include "balancer/node_registry.h"

namespace headroom::balancer {

class Coordinator;

class Sweep {
 public:
  explicit Sweep(Coordinator& c);

  void begin();  // the coordinator took over: both passes from the start, the entries pass at full speed
  void end();
  void node_added();
  // FLUSHALL at `seq`: every entry older is retiring: the entries pass starts over now.
  void flushed(uint64_t seq);
  // Notifications may have been missed (a node's notification connection came back):
  // the entries pass starts over now, at full speed.
  void catch_up();
  // One step of each pass, within the rate (called every coordinator tick).
  void tick();

  // Whether the last complete scan of `node` saw a key of `tag`, if that scan began
  // once every proxy had acknowledged `seq` (so it saw every key still there that was
  // written through the entry as it was before `seq`); nullopt until such a scan ends.
  std::optional<bool> tag_seen(NodeIndex node, std::string_view tag, uint64_t seq) const;

  uint64_t entries_checked() const { return entries_checked_; }
  uint64_t keys_scanned() const { return keys_scanned_; }
  uint64_t passes() const { return passes_; }
  bool catching_up() const { return fast_; }

 private:
  struct NodeScan {
    std::string cursor = "0";
    bool in_flight = false;
    uint64_t started_seq = 0;             // the change stream when this scan began
    uint64_t started_barrier = 0;         // the coordinator's barrier when this scan began
    std::unordered_set<std::string> tags;  // tags seen so far in this scan
    // The last complete scan: the tags it saw, and the stream when it began.
    std::unordered_set<std::string> done_tags;
    uint64_t done_seq = 0;
    uint64_t done_barrier = 0;
    bool done = false;
  };

  void load_buckets();
  void on_bucket(redisReply* r);
  void scan_nodes();
  void on_scan(NodeIndex node, redisReply* r);

  Coordinator& c_;
  uint64_t generation_ = 0;  // bumped by begin/end/flushed: older replies are dropped
  uint32_t next_bucket_ = 0;
  uint32_t buckets_in_flight_ = 0;
  bool fast_ = false;         // a pass after FLUSHALL: no rate limit on bucket reads
  uint64_t budget_ = 0;       // key checks this tick may still start
  uint32_t reads_ = 0;        // bucket reads started this tick
  std::vector<NodeScan> scans_;
  uint64_t entries_checked_ = 0;
  uint64_t keys_scanned_ = 0;
  uint64_t passes_ = 0;
};

}  // namespace headroom::balancer
