// The coordinator (docs/directory.md, "The coordinator"): the one proxy at a time,
// chosen by a lease on the main server, that removes directory entries. Every proxy
// runs one; it acts only while it holds the lease, and every change it makes on the
// main server carries the lease's token, so a coordinator paused past its lease
// cannot act after another took over.
//
// While active it:
//   - retires the entries of keys a data node reports deleted, expired, evicted or
//     renamed away (keyevent notifications, which it turns on on each node);
//   - removes retiring entries once every registered proxy has acknowledged the
//     retirement (the barrier) and the key is confirmed absent on its node (for a
//     hash tag's entry: no key of the tag in a scan of the node begun after the
//     barrier), and makes live again those whose key it finds present;
//   - fences proxies whose registration lapsed, so the barrier never waits for ever
//     and a proxy that may be stale cannot write;
//   - runs the sweep (balancer/sweep.h), the backstop for what notifications miss.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/main_store.h"
#include "balancer/node_registry.h"
#include "resp/buffer.h"

namespace headroom::balancer {

class Ledger;
class Mover;
class Rebalancer;
class Sweep;

struct CoordinatorCounters {
  uint64_t notifications = 0;  // keyevent notifications received
  uint64_t retired = 0;        // entries marked retiring by this coordinator
  uint64_t removed = 0;        // entries removed
  uint64_t revived = 0;        // retiring entries whose key was found present
  uint64_t fenced = 0;         // proxies fenced
  uint64_t orphans = 0;        // keys found on a node with no entry (given one)
  uint64_t misplaced = 0;      // keys found on a node their entry does not name
};

class Coordinator {
 public:
  Coordinator(uv_loop_t* loop, const conf::Config& config, NodeRegistry& nodes, MainStore& store,
              const Ledger& ledger, const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  void start();
  // A node was added (a reload): connected now when active.
  void node_added(NodeIndex node);
  // Gives the lease back (when held) and stops.
  void stop();

  bool active() const { return token_ != 0; }
  const CoordinatorCounters& counters() const { return counters_; }
  size_t waiting() const { return settling_.size() + tags_waiting_.size(); }  // retiring entries not yet settled
  const Sweep& sweep() const { return *sweep_; }
  const Mover& mover() const { return *mover_; }
  const Rebalancer& rebalancer() const { return *rebalancer_; }

  // --- for the sweep
  // Marks the entry retiring (batched).
  void retire(std::string_view dir_key, NodeIndex node);
  // A retiring entry (its value as read) to settle once the barrier passes `seq`.
  void settle_later(std::string dir_key, NodeIndex node, std::string value, uint64_t seq);
  // A key found on `node` with no entry: it gets one there.
  void adopt(std::string_view dir_key, NodeIndex node);
  // A complete scan of a node ended: the tag entries waiting for one are settled again.
  void node_scanned();
  uint64_t barrier() const { return barrier_; }
  ControlConn* node_conn(NodeIndex node);  // nullptr while not connected
  ControlConn& main() { return *main_; }
  MainStore& store() { return store_; }
  NodeRegistry& nodes() { return nodes_; }
  CoordinatorCounters& counters_mut() { return counters_; }
  uint64_t sweep_keys_per_tick() const;
  // An entry the sweep found moving: the mover finishes it unless it is its own.
  void found_moving(std::string_view dir_key, std::string_view value);

  // --- for the mover and the rebalancer
  uv_loop_t* loop() { return loop_; }
  const conf::Config& config() const { return config_; }
  const std::string& lease_value() const { return lease_value_; }
  // True (and no longer the coordinator) when a script answered NOTCOORD.
  bool lease_lost(redisReply* r);
  // A move waits for the barrier: the proxies are polled every few ms until it passes
  // (the proxies acknowledge at once), so a move holds its keys for a few ms, not a tick.
  void watch_barrier();
  // The mover went idle: the rebalancer's next batch (a drain's, chosen while this one
  // ran) begins in the next loop turn, not at the next tick.
  void mover_idle();

 private:
  struct NodeLink {
    std::unique_ptr<ControlConn> cmd;  // EXISTS, CONFIG, CLIENT LIST/KILL, fence markers
    std::unique_ptr<ControlConn> sub;  // keyevent notifications
  };
  struct Waiting {
    std::string key;
    NodeIndex node;
    std::string value;  // the entry's value when it was retired: removed only if still so
    uint64_t seq;       // the change that made it retiring
  };
  struct ProxySeen {
    std::string value;      // "<acked seq> <time>" as last read
    uint64_t changed_ms;    // loop time it last changed (or the coordinator took over)
    uint64_t acked = 0;
  };

  static void on_lease_timer(uv_timer_t* t);
  static void on_tick(uv_timer_t* t);
  void try_lease();
  void became_active(uint64_t token);
  void became_inactive(const std::string& why);
  void connect_nodes();
  void connect_node(NodeIndex i);
  void on_node_cmd_up(NodeIndex i);
  void on_notification(NodeIndex i, redisReply* r);
  void on_change(char kind, uint64_t seq, std::string_view key, NodeIndex node);
  void send_retires();
  void poll_proxies();
  void on_proxies(redisReply* r);
  void fence(const std::string& id);
  void settle_round();
  void on_exists(uint64_t tag, redisReply* r);
  void finish_round();
  void send_settle(char mode, const std::vector<const Waiting*>& items);
  // waiting_keys_ with its nodes reused: a DEL's retirement allocates nothing once warm
  bool remember_waiting(const std::string& key);  // false: waiting already
  void forget_waiting(const std::string& key);

  uv_loop_t* loop_;
  const conf::Config& config_;
  NodeRegistry& nodes_;
  MainStore& store_;
  const std::unique_ptr<net::TlsContext>& tls_;
  ControlTimeouts timeouts_;
  std::unique_ptr<ControlConn> main_;
  std::vector<NodeLink> links_;
  std::unique_ptr<Sweep> sweep_;
  std::unique_ptr<Mover> mover_;
  std::unique_ptr<Rebalancer> rebalancer_;
  uv_timer_t* lease_timer_ = nullptr;  // takes or renews the lease; owned
  uv_timer_t* tick_timer_ = nullptr;   // barrier, settling, retires, sweep; owned
  uv_timer_t* barrier_timer_ = nullptr;  // while a move waits for the barrier; owned
  uv_timer_t* kick_timer_ = nullptr;     // mover_idle's next turn; owned

  uint64_t token_ = 0;        // the lease's token while active (0: not the coordinator)
  std::string lease_value_;   // "<proxy id> <token>", as the scripts check it
  uint64_t lease_renewed_ms_ = 0;
  bool lease_in_flight_ = false;
  bool proxies_in_flight_ = false;
  bool settle_in_flight_ = false;
  uint64_t idle_ticks_ = 0;

  std::vector<std::pair<std::string, NodeIndex>> retires_;  // notified, not yet sent
  std::multimap<uint64_t, Waiting> settling_;               // retiring, by the change that retired them
  std::vector<Waiting> tags_waiting_;  // past the barrier, waiting for a scan of their node begun after it
  std::unordered_set<std::string> waiting_keys_;  // the keys in settling_ and tags_waiting_
  // Nodes taken out of settling_ and waiting_keys_, kept for the next entries (bounded).
  std::vector<std::multimap<uint64_t, Waiting>::node_type> spare_settling_;
  std::vector<std::unordered_set<std::string>::node_type> spare_keys_;
  // The settle round in flight (one at a time), reused: its EXISTS replies carry
  // (id << 16 | item), so a reply of an earlier term's round is told apart.
  struct SettleRound {
    std::vector<Waiting> items;
    // per item: 1 present, 0 absent, -1 unknown (node unreachable), -2 a tag whose node
    // has not been scanned since the barrier passed its retirement
    std::vector<int8_t> present;
    std::vector<const Waiting*> gone, back;
    size_t left = 0;
    uint64_t id = 0;
  };
  SettleRound round_;
  uint64_t barrier_ = 0;  // every registered proxy has acknowledged this far
  std::unordered_map<std::string, ProxySeen> proxies_;
  std::unordered_set<std::string> fencing_;  // ids being fenced now
  CoordinatorCounters counters_;
};

}  // namespace headroom::balancer
