// The proxy process: one libuv loop, the listeners, client and backend connections,
// the balancer's parts (node registry, placement ledger, memory poller, directory,
// main store), and the once-per-loop-turn flush that batches writes (every dirty
// backend and client gets one write of everything queued for it).
#pragma once

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "balancer/coordinator.h"
#include "balancer/directory.h"
#include "balancer/ledger.h"
#include "balancer/main_store.h"
#include "balancer/memory_poller.h"
#include "balancer/node_registry.h"
#include "conf/config.h"
#include "net/tls.h"
#include "proxy/backend_pool.h"
#include "proxy/latency.h"
#include "proxy/leases.h"
#include "proxy/request.h"
#include "proxy/request_pool.h"
#include "proxy/stats.h"

namespace headroom::proxy {

class AdminHttp;
class ClientConn;
class Router;

class Server final : private balancer::WriteTracker {
 public:
  Server(uv_loop_t* loop, conf::Config config, std::string config_path, net::TlsContexts tls = {});
  ~Server();

  // Connects to the nodes and the main server; starts listening once the directory
  // has loaded. Returns 0, or a libuv error code if the listen address is unusable.
  int start();

  // Graceful stop: stop accepting and reading, deliver in-flight replies, then close.
  void shutdown();
  // The same, logged as critical, for a condition headroom cannot serve through.
  void fail(const std::string& why);
  bool failed() const { return failed_; }

  // SIGHUP: loads the certificate and key files the config names again, so they can
  // be rotated without a restart. New connections use them; open ones keep theirs.
  // A file that does not load leaves the current certificates in place (logged).
  void reload_certificates();
  // SIGHUP and HEADROOM RELOAD: the config file read again (proxy/reload.cpp). Returns
  // "" when it was applied, else the error reply saying why it was not (the running
  // config stays).
  std::string reload();
  // Another proxy recorded a different node list: no placements until a reload.
  bool node_list_differs() const { return node_list_differs_; }
  bool stopping() const { return stopping_; }

  uv_loop_t* loop() { return loop_; }
  const conf::Config& config() const { return config_; }
  const std::string& config_path() const { return config_path_; }
  balancer::NodeRegistry& nodes() { return nodes_; }
  balancer::Ledger& ledger() { return ledger_; }
  balancer::Directory& directory() { return directory_; }
  balancer::MainStore& main_store() { return *main_store_; }
  balancer::MemoryPoller& poller() { return *poller_; }
  // The connection PUBLISH and PUBSUB go on (the main server's), while up; else nullptr.
  balancer::ControlConn* publisher() { return publisher_ && publisher_->up() ? publisher_.get() : nullptr; }
  balancer::Coordinator& coordinator() { return *coordinator_; }
  Router& router() { return *router_; }
  RequestPool& requests() { return requests_; }
  Leases& leases() { return *leases_; }
  Stats& stats() { return stats_; }  // INFO's counters (CONFIG RESETSTAT zeroes them)
  // Elements a blocking pop took for a client that had left, being put back: a
  // shutdown waits for them.
  uint64_t& give_backs_in_flight() { return give_backs_in_flight_; }
  uint64_t start_time_ms() const { return start_time_ms_; }
  size_t client_count() const { return clients_.size(); }
  size_t blocked_clients() const;  // waiting on a blocking command (INFO)
  ClientConn* client_by_id(uint64_t id) const;  // nullptr: none (CLIENT UNBLOCK; a scan)
  // TLS towards backends (data nodes, main server), or nullptr when off.
  const net::TlsContext* backend_tls() const { return tls_.backends.get(); }

  // The connections to `node`.
  BackendPool& backends(balancer::NodeIndex node) { return pools_[2 * size_t{node}]; }
  // Those that speak RESP3 (resp3) or RESP2 to it.
  BackendPool& backends(balancer::NodeIndex node, bool resp3) { return pools_[2 * size_t{node} + (resp3 ? 1 : 0)]; }
  bool node_available(balancer::NodeIndex node) const { return pools_[2 * size_t{node}].any_connected(); }
  // A backend connection to `node` went up or down: placement follows.
  void backend_state_changed(balancer::NodeIndex node) { nodes_[node].backend_up = node_available(node); }

  void mark_dirty(BackendConn* b) { dirty_backends_.push_back(b); }
  void forget_dirty(BackendConn* b) { std::erase(dirty_backends_, b); }  // `b` is going away
  void mark_dirty(ClientConn* c) { dirty_clients_.push_back(c); }

  // A backend's reply for (req, fragment); the Router takes it from there.
  void on_fragment_reply(Request* req, uint32_t fragment, std::string_view reply);

  // A request's reply is queued for its client: its latency is counted (and logged if slow).
  void answered(const Request& r) {
    const uint64_t now = turn_ns();
    const uint64_t ns = now > r.start_ns ? now - r.start_ns : 0;
    latency_[static_cast<size_t>(latency_class(r))].add(ns);
    if (r.cmd != nullptr) {
      CommandStats& c = command_stats_[static_cast<size_t>(r.cmd - commands_)];
      ++c.calls;
      c.ns += ns;
      c.failed += r.failed ? 1 : 0;
    }
    if (slowlog_.slow(ns)) log_slow(r, ns);
  }
  const std::vector<CommandStats>& command_stats() const { return command_stats_; }
  // INFO errorstats: error replies by their first word (ERR, WRONGTYPE, CROSSNODE, ...),
  // as Redis counts them: at most kMaxErrorKinds kinds, later new ones are not kept.
  // `error`: the reply without its '-'. Error replies only: off the request path.
  void count_error(std::string_view error) {
    static constexpr size_t kMaxErrorKinds = 128;
    ++stats_.error_replies_sent;
    const std::string_view kind = error.substr(0, error.find_first_of(" \r\n"));
    auto it = error_stats_.find(kind);
    if (it != error_stats_.end()) ++it->second;
    else if (error_stats_.size() < kMaxErrorKinds) error_stats_.emplace(std::string(kind), 1);
  }
  const std::map<std::string, uint64_t, std::less<>>& error_stats() const { return error_stats_; }
  // CONFIG RESETSTAT: INFO's counters and the command stats start again.
  void reset_stats() {
    stats_ = Stats{};
    command_stats_.assign(command_stats_.size(), CommandStats{});
    error_stats_.clear();
  }
  const std::array<LatencyHistogram, static_cast<size_t>(LatencyClass::kCount)>& latency() const { return latency_; }
  // A new key's wait for the main server's answer (asked to answered), per key placed.
  LatencyHistogram& placement_latency() { return placement_latency_; }
  SlowLog& slowlog() { return slowlog_; }

  // `c` has closed: it is deleted at the end of this loop turn, its requests orphaned.
  void client_closed(ClientConn* c);
  // HEADROOM DRAIN, or the shared set read again: the node takes new keys or not.
  void set_draining(balancer::NodeIndex node, bool on);
  // The operator's actions (HEADROOM over RESP, the admin port's POSTs), recorded on the
  // main server so every proxy's coordinator sees them. `done` gets "" or the error.
  using AdminDone = std::function<void(std::string error)>;
  void drain_node(balancer::NodeIndex node, bool on, AdminDone done);
  void ask_rebalancer(std::string what, AdminDone done);  // "rebalance", or "move <node> <dir key>"
  // `c`'s next request waits for a move (Router::await_moves): pumped when one ends.
  void park_for_move(ClientConn* c);

  // CLIENT PAUSE (proxy/client_commands.cpp), as Redis's: until `end_ms` (loop time),
  // this headroom's clients' commands wait, every one (All) or those that write
  // (Write: Redis's write and may-replicate commands, an EXEC of a block with one).
  // A pause already in force keeps the stronger kind and the later end. The held
  // commands wait in their clients' queues (nothing blocks the loop) and go, in
  // order, at the end of the loop turn in which the pause ends.
  enum class PauseKind : uint8_t { Off, Write, All };
  void pause_clients(PauseKind kind, uint64_t end_ms);
  void end_pause();  // CLIENT UNPAUSE, the pause's end, a shutdown
  bool paused() const { return pause_ != PauseKind::Off; }
  // Router::dispatch while paused: true when `req` waits for the pause's end (its
  // client is pumped then). An error already answered (arity, syntax) never waits.
  bool held_by_pause(Request* req);
  const std::unordered_set<ClientConn*>& clients() const { return clients_; }  // closed ones until the turn ends
  bool is_monitor(const ClientConn* c) const { return std::find(monitors_.begin(), monitors_.end(), c) != monitors_.end(); }

  // MONITOR (proxy/monitor.h): `c` now gets a line for every command received.
  void add_monitor(ClientConn* c) {
    if (std::find(monitors_.begin(), monitors_.end(), c) == monitors_.end()) monitors_.push_back(c);
  }
  bool has_monitors() const { return !monitors_.empty(); }
  void feed_monitors(const ClientConn& from, std::span<const std::string_view> argv);
  uint64_t next_client_id() { return ++last_client_id_; }

 private:
  static void on_connection(uv_stream_t* server, int status);
  static void on_prepare(uv_prepare_t* p);
  void end_of_turn();
  void delete_closed_clients();
  int bind_listeners();
  int listen();
  void maybe_finish_shutdown();
  void close_idle_clients(uint64_t now_ms);
  void pump_parked();
  void release_paused();  // the pause ended: the clients it held go on
  // The time of this loop turn, read once per turn that answers something.
  uint64_t turn_ns() {
    if (turn_ns_of_ != turn_) {
      turn_ns_ = uv_hrtime();
      turn_ns_of_ = turn_;
    }
    return turn_ns_;
  }
  static LatencyClass latency_class(const Request& r);
  void log_slow(const Request& r, uint64_t ns);
  void add_pools(balancer::NodeIndex node);
  void refresh_shared_state(uint64_t now_ms);
  std::string node_list() const;  // "name=address,..." sorted: what hr:nodes records
  void record_node_list();
  // balancer::WriteTracker: every backend connection's counts, in one fixed order.
  void sent_counts(std::vector<uint64_t>& out) const override;
  bool answered_all(const std::vector<uint64_t>& sent) const override;

  uv_loop_t* loop_;
  conf::Config config_;
  std::string config_path_;
  balancer::NodeRegistry nodes_;
  balancer::Ledger ledger_;
  balancer::Directory directory_;
  RequestPool requests_;  // before the connections: their requests return here
  std::unique_ptr<balancer::MainStore> main_store_;
  std::unique_ptr<balancer::MemoryPoller> poller_;
  std::unique_ptr<Leases> leases_;
  std::unique_ptr<balancer::ControlConn> publisher_;
  bool grace_over_ = false;  // shutdown waits for nothing more
  uint64_t give_backs_in_flight_ = 0;
  std::unique_ptr<balancer::Coordinator> coordinator_;
  std::vector<BackendPool> pools_;  // [2 * node]: RESP2; [2 * node + 1]: RESP3
  std::unique_ptr<Router> router_;
  std::unique_ptr<AdminHttp> admin_;  // the admin HTTP port, when configured
  Stats stats_;

  net::TlsContexts tls_;
  // The client ports: `listen` (TLS when tls is on without its own port), and
  // tls.listen when given. Each handle's data is the Server; tls says which is which.
  struct Listener {
    uv_tcp_t* tcp;
    conf::Endpoint address;
    const net::TlsContext* tls;  // nullptr: plaintext
  };
  std::vector<Listener> listeners_;
  uv_prepare_t* prepare_ = nullptr;
  uv_timer_t* shutdown_timer_ = nullptr;
  uv_timer_t* timeout_timer_ = nullptr;  // checks request timeouts and idle clients
  uv_timer_t* pause_timer_ = nullptr;    // CLIENT PAUSE's end
  std::unordered_set<ClientConn*> clients_;
  std::vector<ClientConn*> closed_clients_;  // deleted at the end of the loop turn
  std::vector<BackendConn*> dirty_backends_;
  std::vector<ClientConn*> dirty_clients_;
  std::vector<ClientConn*> monitors_;
  std::vector<ClientConn*> move_parked_;  // clients whose next request waits for a move
  std::vector<ClientConn*> pause_parked_;  // clients whose next request waits for the pause's end
  PauseKind pause_ = PauseKind::Off;
  uint64_t pause_end_ms_ = 0;
  bool pause_release_due_ = false;  // the pause ended: pause_parked_ go at the end of the turn
  std::array<LatencyHistogram, static_cast<size_t>(LatencyClass::kCount)> latency_{};
  LatencyHistogram placement_latency_{};
  std::map<std::string, uint64_t, std::less<>> error_stats_;
  SlowLog slowlog_;
  const resp::CommandInfo* commands_ = nullptr;  // the command table's first row
  std::vector<CommandStats> command_stats_;      // per row
  uint64_t turn_ = 0;  // loop turns (end_of_turn)
  uint64_t turn_ns_of_ = UINT64_MAX;
  uint64_t turn_ns_ = 0;
  uint64_t parked_version_ = 0;           // the directory version they were last pumped at
  bool parked_timer_due_ = false;
  uint64_t last_draining_ms_ = 0;
  bool draining_in_flight_ = false;
  bool draining_announced_ = false;
  bool node_list_recorded_ = false;
  bool node_list_differs_ = false;
  uint64_t last_client_id_ = 0;
  uint64_t start_time_ms_ = 0;
  uint64_t last_idle_check_ms_ = 0;
  bool stopping_ = false;
  bool failed_ = false;  // stopped by fail(): the process exits with status 1
  bool listening_ = false;
  bool left_ = false;  // unregistered from the directory (graceful shutdown)
};

}  // namespace headroom::proxy
