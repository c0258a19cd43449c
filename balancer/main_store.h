// This proxy's side of the shared directory on the main server (docs/directory.md):
// it keeps the local cache (Directory) in step with the change stream, places new
// keys, marks entries retiring, registers the proxy and acknowledges how far it has
// followed the stream, and starts over under a new id when it learns it was fenced.
//
// Connections: one for scripts and loads, one subscribed to the change stream. Every
// change arrives on the stream in sequence order; a proxy's own command replies may
// arrive before or after the matching message, which is why entries carry versions
// and a change older than what the cache holds is never applied.
#pragma once

#include <uv.h>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/directory.h"
#include "balancer/holds.h"
#include "balancer/ledger.h"
#include "balancer/node_registry.h"
#include "resp/buffer.h"

namespace headroom::balancer {

inline constexpr uint32_t kBuckets = 65536;
inline constexpr std::string_view kEventsChannel = "headroom:dir:events";

// Result of a placement: the entry that holds the key afterwards, or an error.
struct PlaceResult {
  int node = -1;         // >= 0: the node the entry names
  uint64_t version = 0;  // the entry's version
  std::string error;     // set when node < 0 (without the leading '-')
};

// What the data path tells the directory about its writes, so that an
// acknowledgement covers them (docs/directory.md, "Why a removal cannot leave an
// orphan"): per backend connection, a count of commands sent and one of commands
// answered (or failed), both only ever growing.
class WriteTracker {
 public:
  virtual void sent_counts(std::vector<uint64_t>& out) const = 0;
  // Every connection has answered at least as many commands as `sent` says it had sent.
  virtual bool answered_all(const std::vector<uint64_t>& sent) const = 0;

 protected:
  ~WriteTracker() = default;
};

class MainStore {
 public:
  using PlaceFn = std::function<void(const PlaceResult&)>;

  MainStore(uv_loop_t* loop, const conf::BackendConfig& main, NodeRegistry& nodes, Directory& dir,
            const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts);
  ~MainStore();

  // Connects, subscribes to changes, then loads every entry into the Directory and
  // registers this proxy. `on_loaded` is called once, after the first full load;
  // `on_fatal` when the directory cannot be served by this build or config (another
  // layout, or entries on a node the config lacks).
  void start(std::function<void()> on_loaded, std::function<void(const std::string&)> on_fatal);
  // Unregisters (so no removal waits for this proxy), then `done`.
  void leave(std::function<void()> done);
  void stop();

  void set_write_tracker(const WriteTracker* t) { tracker_ = t; }
  // Where other proxies' placements are counted (their messages say the bytes).
  void set_ledger(Ledger* l) { ledger_ = l; }
  // Hears every change the stream applies: kind 'P', 'R' or 'D' with its key and
  // node, 'F' (FLUSHALL) with none, or 'X' when the directory went back (flushed or
  // restored behind headroom's back). The coordinator follows retirements with it.
  using ChangeFn = std::function<void(char kind, uint64_t seq, std::string_view key, NodeIndex node)>;
  void set_change_listener(ChangeFn fn) { on_change_ = std::move(fn); }

  bool up() const { return cmd_->up() && sub_->up(); }
  bool loaded() const { return loaded_; }
  // The local directory is complete and follows every change: a key it lacks has
  // been placed by no proxy. False while either connection is down, until the reload
  // after it has finished, and while the stream is not confirmed.
  bool current() const { return current_; }
  const conf::BackendConfig& config() const { return config_; }
  // This proxy's id: its registration, its events, its data connections' names
  // (hr-<id>), its fence marker. A new one after a fence.
  const std::string& origin() const { return origin_; }
  uint64_t applied_seq() const { return applied_seq_; }
  uint64_t flushes_received() const { return flushes_received_; }  // FLUSHALL messages, ever

  // Entries a client waits on (balancer/holds.h).
  void hold(std::string_view dir_key) { holds_->hold(dir_key, origin_); }
  void release_hold(std::string_view dir_key) { holds_->release(dir_key, uv_now(loop_)); }
  size_t holds() const { return holds_->held(); }
  uint64_t acked_seq() const;

  // Asks the main server for a live entry of dir_key, placed on `node` if there is
  // none: `fn` gets the entry afterwards (always later, never from inside this call),
  // in the order the placements were asked for. Two placements of one key at once get
  // the same node. Returns false, and will not call `fn`, when the main server is
  // unreachable. `bytes`: what the new key is expected to take on the node; the
  // placement's message tells the other proxies (Ledger::placed_elsewhere).
  bool place(std::string_view dir_key, NodeIndex node, uint64_t bytes, PlaceFn fn);

  // Marks the entry retiring if it is live and names `node` (a write placed the key
  // and did not create it). Best effort: the sweep finds what is lost.
  void retire(std::string_view dir_key, NodeIndex node);

  // A reload added nodes: entries that named nodes this proxy lacked are loaded now.
  void nodes_added();

  // FLUSHALL, after the nodes were emptied: every entry is retiring. `fn` gets an
  // empty error on success.
  void mark_flushed(std::function<void(std::string_view error)> fn);

  // A data connection, named under `origin`, found that id's fence marker: drop
  // everything and start over under a new id (once: connections still under an older
  // id are ignored).
  void fenced(std::string_view origin);

  // Called at the end of a loop turn while acknowledgements wait for writes.
  bool acks_waiting() const { return !checkpoints_.empty(); }
  void check_acks();

  static std::string bucket_name(std::string_view dir_key);  // the bucket holding a key's entry
  static std::string bucket_name(uint32_t bucket);
  static uint32_t bucket_of(std::string_view dir_key);

 private:
  // The placements of one script call: their keys back to back in one buffer, and
  // who waits for each. Emptied batches are kept for their buffers, so a steady
  // stream of new keys costs no allocation per key.
  struct Batch {
    struct Item {
      uint32_t key_offset;
      uint32_t key_len;
      NodeIndex node;
      uint64_t bytes;
      PlaceFn fn;
    };
    uint64_t sent_at = 0;  // its place in what was sent to the main server (0: not sent); names it
    std::string keys;
    std::vector<Item> items;
    std::vector<PlaceResult> results;  // answered, held until the main server has published them
    bool synced = false;               // that round trip is done: the waiters may have the results
    std::string_view key(const Item& item) const { return {keys.data() + item.key_offset, item.key_len}; }
  };
  // An R or F message applied at `seq`: it is acknowledged once every write sent
  // before it has been answered.
  struct Checkpoint {
    uint64_t seq;
    std::vector<uint64_t> sent;
  };

  void on_cmd_state(bool up);
  void start_load();
  void retry_load(const std::string& why);
  void load_next();
  void on_bucket(uint32_t bucket, redisReply* r);
  void finish_load();
  void on_event(redisReply* r);
  void apply_entries(char kind, uint64_t seq, std::string_view entries);
  void count_placed_elsewhere(std::string_view sizes);
  void stream_lost(const std::string& why);
  void went_back(const std::string& what);
  void check_not_back(uint64_t seen);
  Batch& filling_batch();
  void send_batches();
  void on_batch_reply(uint64_t sent_at, redisReply* r);
  void release_synced();
  void recycle(Batch&& b);
  void fail_placements();
  void heartbeat();
  void beat_now();
  void start_over(const std::string& why);
  // EVALSHA of one of the scripts (the SHA is the script's, computed here), encoded
  // into `out`: numkeys keys, then args.
  void encode_eval(resp::Buffer& out, size_t script, std::initializer_list<std::string_view> keys,
                   std::initializer_list<std::string_view> args);

  uv_loop_t* loop_;
  conf::BackendConfig config_;
  NodeRegistry& nodes_;
  Directory& dir_;
  std::unique_ptr<ControlConn> cmd_;  // scripts and loads
  std::unique_ptr<ControlConn> sub_;  // SUBSCRIBE only
  std::function<void()> on_loaded_;
  std::function<void(const std::string&)> on_fatal_;
  const WriteTracker* tracker_ = nullptr;
  Ledger* ledger_ = nullptr;
  ChangeFn on_change_;
  std::string origin_;  // this proxy's id (see origin())
  std::string layout_;  // this build's directory layout, as recorded on the main server
  std::vector<std::string> shas_;  // per script, its SHA1 (hex)

  bool loaded_ = false;
  bool subscribed_ = false;
  bool current_ = false;
  bool unknown_node_entries_ = false;  // entries name a node the config lacks: not current
  uint64_t flushes_received_ = 0;
  std::unique_ptr<Holds> holds_;  // on cmd_
  bool registered_ = false;
  bool leaving_ = false;
  bool beat_in_flight_ = false;

  // The change stream: the last sequence number applied (0: none yet on this
  // subscription), and per bucket the sequence number its last load reflects
  // (messages not newer than that are in the load already).
  uint64_t applied_seq_ = 0;
  uint64_t acked_reported_ = 0;  // the acknowledgement last sent (it never goes back)
  std::vector<uint64_t> loaded_at_;
  uint64_t max_loaded_at_ = 0;
  // The first message after a load numbered no higher than the load: the main server's
  // sequence is read to tell a late message from a directory that went back (the
  // cache is not current meanwhile).
  uint64_t back_check_ = 0;  // its generation while one is pending, else 0
  uint64_t back_checks_ = 0;
  std::deque<Checkpoint> checkpoints_;
  std::deque<uint64_t> own_batches_;  // our placements the cache took from the reply, before their message

  // A load in progress: its generation (a newer load supersedes it), the next bucket,
  // how many are in flight, and the removals the stream applied meanwhile (so an older
  // snapshot of the bucket does not bring them back).
  uint64_t load_generation_ = 0;
  uint32_t load_next_bucket_ = 0;
  uint32_t load_in_flight_ = 0;
  std::unordered_map<std::string, uint64_t> removed_during_load_;
  std::unordered_map<std::string, size_t> unknown_nodes_;  // entries naming nodes the config lacks

  // Placements in order: the first batches_in_flight_ are sent and await their
  // reply (replies come back in order); the others wait for one of those to end.
  std::deque<Batch> batches_;
  uint32_t batches_in_flight_ = 0;
  std::vector<Batch> spare_batches_;
  // Answered batches waiting for the round trip that proves their message has gone
  // out to every proxy (see on_batch_reply), oldest first.
  std::deque<Batch> answered_;
  uint64_t sent_ = 0;  // commands sent on cmd_, numbered: its replies come back in that order
  resp::Buffer script_call_;  // the EVALSHA being encoded, reused
  std::string event_;         // the message a placement publishes, reused
  std::string origin_arg_;    // this proxy's id and the batch's bytes per node, reused
  std::vector<uint64_t> node_bytes_;  // per node, the batch being encoded
  uv_timer_t* retry_timer_ = nullptr;      // restarts a directory load that failed; owned
  uv_timer_t* heartbeat_timer_ = nullptr;  // registration and acknowledgements; owned
};

}  // namespace headroom::balancer
