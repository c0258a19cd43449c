// The shared directory on the main server: the authority for key -> node.
//
// Layout on the main server: the entries live in kBuckets hashes "hr:dir:<n>", n =
// stable_hash(dir_key) % kBuckets, field = directory key, value = node name. Small
// hashes stay listpack-encoded in Redis, which keeps the main server's memory per
// entry low (about 30 bytes); a listpack is searched linearly, so more buckets make
// placements cheaper. 65536 keeps them listpacks up to about 8 million keys (the
// default hash-max-listpack-entries is 128) and, against 16384, cut the main
// server's CPU per new key by a quarter at 2.4 million keys for 4 bytes per entry.
// hr:dir:layout records the layout (see kLayoutScript in main_store.cpp).
//
// Every change is published on kEventsChannel so other proxies' caches follow:
//   "B<origin>" then "<key length>:<node>\n<key>" per key   placed (a batch)
//   "D<origin><node>\n<key>"  removed    "F<origin>"  flushed
// <origin> (16 hex digits, random per process) names the proxy that made the change.
// A proxy skips its own events: it applied each change to its cache already, in the
// order it sent them, and its own event arrives later than a newer change it may
// have made since (DEL k then SET k: the old "D" must not erase the new entry).
//
// Placement is one Lua script per batch of keys (atomic on the main server): set each
// entry if absent, publish the ones it set, and name the node of each key that had an
// entry already, so two proxies placing the same new key at once agree on one node.
#pragma once

#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/directory.h"
#include "balancer/node_registry.h"
#include "resp/buffer.h"

namespace headroom::balancer {

inline constexpr uint32_t kBuckets = 65536;
inline constexpr std::string_view kEventsChannel = "headroom:dir:events";

// Result of a placement: a node index, or an error.
struct PlaceResult {
  int node = -1;         // >= 0: the node that holds the entry
  std::string error;     // set when node < 0 (without the leading '-')
};

class MainStore {
 public:
  using PlaceFn = std::function<void(const PlaceResult&)>;

  MainStore(uv_loop_t* loop, const conf::BackendConfig& main, NodeRegistry& nodes, Directory& dir,
            const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts);
  ~MainStore();

  // Connects, subscribes to changes, then loads every entry into the Directory.
  // `on_loaded` is called once, after the first full load; `on_fatal` when the
  // directory on the main server cannot be used by this build (another layout).
  void start(std::function<void()> on_loaded, std::function<void(const std::string&)> on_fatal);
  void stop();

  bool up() const { return cmd_->up() && sub_->up(); }
  bool loaded() const { return loaded_; }
  // The local directory is complete and follows every change: a key it lacks has
  // been placed by no proxy. False while either connection to the main server is
  // down and until the reload after it has finished.
  bool current() const { return current_; }
  const conf::BackendConfig& config() const { return config_; }

  // Records dir_key -> `node` unless an entry exists; `fn` gets the node that holds
  // the entry afterwards (always later, never from inside this call), in the order
  // the placements were asked for. Two placements of one key at once get the same
  // node: the main server keeps the first. Returns false, and will not call `fn`,
  // when the main server is unreachable.
  bool place(std::string_view dir_key, NodeIndex node, PlaceFn fn);

  // Removes the entry if it still names `node` (keys deleted through the proxy).
  void remove(std::string_view dir_key, NodeIndex node);

  // Removes every entry (FLUSHALL). `fn` gets an empty error on success.
  void flush(std::function<void(std::string_view error)> fn);

  static std::string bucket_name(std::string_view dir_key);  // the bucket holding a key's entry
  static std::string bucket_name(uint32_t bucket);

 private:
  // The placements of one script call: their keys back to back in one buffer, and
  // who waits for each. Emptied batches are kept for their buffers, so a steady
  // stream of new keys costs no allocation per key.
  struct Batch {
    struct Item {
      uint32_t key_offset;
      uint32_t key_len;
      NodeIndex node;
      PlaceFn fn;
    };
    uint64_t sent_at = 0;  // its place in what was sent to the main server (0: not sent); names it
    std::string keys;
    std::vector<Item> items;
    std::string_view key(const Item& item) const { return {keys.data() + item.key_offset, item.key_len}; }
  };

  void start_load();
  void retry_load(const std::string& why);
  void on_event(redisReply* r);
  void load_next();
  Batch& filling_batch();
  void send_batches();
  void on_batch_reply(uint64_t sent_at, redisReply* r);
  void fail_placements();
  bool overtaken(std::string_view dir_key, uint64_t sent_at) const;
  void apply_placed(std::string_view entries);
  void forget_removal(uint64_t at);

  uv_loop_t* loop_;
  conf::BackendConfig config_;
  NodeRegistry& nodes_;
  Directory& dir_;
  std::unique_ptr<ControlConn> cmd_;  // scripts and loads
  std::unique_ptr<ControlConn> sub_;  // SUBSCRIBE only
  std::function<void()> on_loaded_;
  std::function<void(const std::string&)> on_fatal_;
  std::string origin_;  // this process's tag on the events it causes
  std::string layout_;  // this build's directory layout, as recorded on the main server
  bool loaded_ = false;
  bool subscribed_ = false;
  bool current_ = false;
  uint64_t load_generation_ = 0;
  uint32_t load_next_bucket_ = 0;
  uint32_t load_in_flight_ = 0;
  // Placements in order: the first batches_in_flight_ are sent and await their
  // reply (replies come back in order); the others wait for one of those to end.
  std::deque<Batch> batches_;
  uint32_t batches_in_flight_ = 0;
  std::vector<Batch> spare_batches_;
  // Commands sent on cmd_ are numbered; its replies come back in that order.
  uint64_t sent_ = 0;
  uint64_t flushed_at_ = 0;  // the last FLUSHALL's number
  // Keys removed while earlier commands were still unanswered, with the removal's
  // number (see overtaken()); each is dropped at its removal's reply.
  std::unordered_map<std::string, uint64_t> removed_at_;
  std::deque<std::pair<std::string, uint64_t>> removals_;  // removed_at_'s entries, in order
  resp::Buffer remove_call_;  // the removal being encoded, reused
  resp::Buffer script_call_;  // the EVAL being encoded, reused
  std::string event_;         // the change message it publishes, reused
  uv_timer_t* retry_timer_ = nullptr;  // restarts a directory load that failed; owned
};

}  // namespace headroom::balancer
