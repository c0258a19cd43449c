// The mover (docs/moves.md): moves directory entries, with their keys, from one data
// node to another while every proxy keeps serving. The coordinator runs it, one batch
// at a time:
//
//   begin    script on the main server: each entry live on the source becomes
//            "moving" (message M); from then on every proxy holds the entry's commands
//   barrier  every registered proxy has acknowledged M (so none will write to the
//            source again, and none of its writes there is still on its way), or was
//            fenced; a barrier not reached in time undoes the batch (nothing copied)
//   collect  a hash tag's keys: a SCAN of the source for the tag
//   copy     DUMP and PTTL on the source, RESTORE ... REPLACE on the destination
//   delete   UNLINK on the source
//   commit   script: each entry, still exactly as begun and with no FLUSHALL begun
//            since, is live on the destination (message P): held commands go there
//
// Every command the mover sends a data node that changes it (RESTORE, UNLINK) is a
// script that first checks the node's mover fence (hr:mover:fence in database 1)
// against the coordinator's token, and every coordinator raises that fence on every
// node before it finishes anyone's move: a mover paused past its lease cannot touch a
// node after another took over. An entry left moving (the mover died, or lost the
// lease, or a node failed mid-copy) is found by the sweep and finished by the next
// batch: keys still on the source are copied again, the others are on the
// destination already.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/node_registry.h"

namespace headroom::balancer {

class Coordinator;

struct MoverCounters {
  uint64_t batches = 0;         // batches begun
  uint64_t entries_moved = 0;   // entries committed to their destination
  uint64_t keys_moved = 0;      // keys copied (a hash tag's entry moves all its keys)
  uint64_t bytes_moved = 0;     // DUMP payload bytes copied
  uint64_t entries_undone = 0;  // entries put back on their source (barrier not reached, copy failed)
  uint64_t entries_finished = 0;  // interrupted moves found and finished
  uint64_t errors = 0;
  uint64_t waits_for_config = 0;  // begins refused: a proxy did not know the destination yet
  // Where a batch's time goes (ms, summed over batches): the begin script, the
  // barrier, the copy (holds check, SCAN, DUMP/PTTL), the restore, the commit and the
  // delete; the rest (undo, cleanup) is not counted.
  uint64_t ms_begin = 0, ms_barrier = 0, ms_copy = 0, ms_restore = 0, ms_commit = 0, ms_delete = 0;
};

class Mover {
 public:
  explicit Mover(Coordinator& c);

  // Moves these entries (directory keys, live on `from`) to `to`. false: a batch is
  // in progress, or a node is not reachable or not fenced yet.
  bool start(NodeIndex from, NodeIndex to, std::vector<std::string> dir_keys);
  bool busy() const { return phase_ != Phase::Idle; }
  bool waiting_for_barrier() const { return phase_ == Phase::Barrier; }
  // The coordinator's tick: the barrier, its timeout, and interrupted moves to finish.
  void tick();
  // The sweep found an entry moving (`value` as stored): unless it is this batch's,
  // it is finished by a later batch.
  void found_moving(std::string_view dir_key, std::string_view value);

  // Coordinator term: begin raises the fence on every node as each comes up.
  void begin(uint64_t token);
  void end();
  void node_up(NodeIndex node);
  void node_added() { fenced_.push_back(0); }

  const MoverCounters& counters() const { return counters_; }
  // The step the batch in progress is at ("idle" between batches), and since when
  // (loop ms): HEADROOM NODES shows both, so a batch that waits is seen waiting.
  const char* phase_name() const;
  uint64_t phase_since_ms() const { return phase_ms_; }
  // Bytes and keys the last batch copied, and when it began (for the rate limits).
  uint64_t last_batch_bytes() const { return last_bytes_; }
  uint64_t last_batch_keys() const { return last_keys_; }

 private:
  enum class Phase { Idle, Begin, Barrier, Collect, Copy, Restore, Commit, Delete, Undo, Cleanup };
  struct Item {
    std::string dir_key;
    std::string value;               // its moving value, as the begin script wrote it
    std::vector<std::string> keys;   // the keys to copy (a tag: every key of it on the source)
    std::vector<std::string> dumps;  // per key: DUMP (empty: the key is not on the source)
    std::vector<int64_t> ttls;       // per key: PTTL
    bool restored_any = false;
  };

  void enter(Phase p);  // the phase changes: the time in the one left is counted
  void begun(redisReply* r);
  void check_holds();
  void collect();
  void scan_tag(size_t item, std::string cursor);
  void copy();
  void copy_more();
  void restore();
  void remove_from_source(const std::vector<size_t>& committed);
  std::string cleanup_member(NodeIndex node, std::string_view key) const;
  void cleanup_set(const char* op, NodeIndex node, const std::vector<std::string>& keys);
  void clean_set_write(const std::vector<std::string_view>& argv);
  void clean_up();
  void requeue(const std::string& why);
  void commit();
  void committed(redisReply* r);
  void undo(const std::string& why);
  void end_moves(char mode, const std::vector<size_t>& items, bool then_idle);
  void delete_on(NodeIndex node, const std::vector<std::string>& keys, std::function<void(bool)> done);
  void fail(const std::string& why);
  void finish();
  void counted(bool sent);  // a command of a phase sent (one more to wait for), or not (failed)
  void step_done();  // one outstanding command of a phase answered
  uint64_t barrier_timeout_ms() const;
  bool fenced(NodeIndex n) const { return n < fenced_.size() && fenced_[n] == token_; }

  Coordinator& c_;
  uint64_t token_ = 0;
  std::vector<uint64_t> fenced_;  // per node: the token whose fence it has confirmed

  Phase phase_ = Phase::Idle;
  uint64_t phase_ms_ = 0;  // when phase_ began
  bool slow_warned_ = false;  // this phase has been reported as slow
  uint64_t gen_ = 0;  // a batch's callbacks check it: a batch abandoned (end) ignores them
  NodeIndex from_ = 0, to_ = 0;
  uint64_t seq_ = 0;  // the begin's change: the barrier waits for it
  uint64_t begun_ms_ = 0;
  bool finishing_ = false;      // a batch of interrupted moves: never undone (its source may be partly deleted)
  bool cleanup_due_ = false;  // hr:moves:clean may list copies to delete: no batch begins before clean_up
  bool failed_ = false;
  size_t left_ = 0;  // commands outstanding in this phase
  std::pair<size_t, size_t> copy_next_;  // the copy's next (item, key) to read
  size_t copy_in_flight_ = 0;            // keys whose DUMP and PTTL are unanswered
  bool copy_all_sent_ = false;
  std::vector<Item> items_;
  uint64_t last_bytes_ = 0, last_keys_ = 0;
  uint64_t retry_after_ms_ = 0;  // interrupted moves that failed are tried again from then

  // Interrupted moves the sweep found: "<dir key>" -> value, finished when idle.
  std::deque<std::pair<std::string, std::string>> interrupted_;
  std::unordered_set<std::string> interrupted_keys_;
  MoverCounters counters_;
};

}  // namespace headroom::balancer
