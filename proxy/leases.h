// Data-node connections leased to one client each, for as long as a state of the
// client's lives on the connection (WATCH, until EXEC, DISCARD or UNWATCH; a blocking
// command, until its reply). While a client holds a lease on a node, every command of
// that client to that node goes on it, in order, and no other client's does. A lease
// is a BackendConn of its own (the same init: AUTH, the proxy's name for fencing, the
// fence check, and its CLIENT ID), bounded per node (limits.max_leases_per_node),
// never reconnected (what the client built on it went with it), and given back at the
// end of the loop turn in which it ends (never inside one of its own callbacks): kept
// for the next lease of that node when it holds no state (a few per node), else closed.
//
// A client that leaves while blocked: its connection is unblocked with CLIENT UNBLOCK
// (on the node's control connection) rather than closed, so that an element Redis
// popped for it just before is not lost on the way: the reply still arrives, and the
// router gives the element back (route_blocking.cpp). Then the lease closes.
//
// The change stream's acknowledgement covers writes sent on leases too (WriteTracker:
// Server::sent_counts appends each open lease's id and count).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "balancer/node_registry.h"

namespace headroom::proxy {

class BackendConn;
class ClientConn;
class Server;

// What a client holds: at most one lease, on one node.
struct Lease {
  BackendConn* conn = nullptr;  // nullptr: none
  balancer::NodeIndex node = 0;
  bool lost = false;    // the connection failed: the state on it is gone
  bool ending = false;  // released once nothing is in flight on it
  bool blocking = false;     // a blocking command is in flight on it: no request timeout
  bool node_watches = false;  // the node holds a WATCH for it (DISCARD does not clear that): not reused
  std::vector<std::string> watched;  // the keys WATCHed on it
};

class Leases {
 public:
  explicit Leases(Server& server);
  // A node was added (a reload).
  void node_added() {
    per_node_.push_back(0);
    idle_.resize(idle_.size() + 2);
  }
  ~Leases();

  // Opens a lease on `node` for `client` (connecting now; the client hears
  // lease_ready or lease_lost). false, with `error` set, when the node's bound is
  // reached.
  bool open(ClientConn* client, balancer::NodeIndex node, std::string& error);
  // The client's lease ends once nothing is in flight on it (its EXEC answered).
  void end_when_idle(ClientConn* client);
  // The client has gone: its lease closes at the end of this turn (what is in flight
  // on it fails, so nothing of a gone client runs later).
  void drop(ClientConn* client);
  // End of the loop turn: closes and frees the leases that ended.
  void end_of_turn();
  bool any_to_close() const { return !ending_.empty() || !dropped_.empty() || !unblocking_.empty(); }

  void check_timeouts(uint64_t now_ms, uint32_t request_timeout_ms);
  void shutdown_all();
  size_t open_count() const { return open_.size() - idle_count(); }  // leased now
  // Connections of clients gone while blocked, waiting for their last reply.
  size_t unblocking() const { return unblocking_.size(); }
  size_t idle_count() const;
  // Every open lease's connection, idle ones included (metrics).
  template <class F>
  void for_each_conn(F&& f) const {
    for (const auto& [id, o] : open_) f(static_cast<const BackendConn&>(*o.conn));
  }

  // WriteTracker (Server): appends (lease id, commands sent) for each open lease;
  // answered: every lease named in `sent` from `from` on is gone or has answered that many.
  void sent_counts(std::vector<uint64_t>& out) const;
  bool answered_all(const std::vector<uint64_t>& sent, size_t from) const;

 private:
  static constexpr size_t kIdlePerNode = 16;  // kept for reuse, per node

  struct Open {
    std::unique_ptr<BackendConn> conn;
    balancer::NodeIndex node;
  };
  static constexpr int kUnblockAttempts = 100;
  void close(uint64_t id);
  void unblock(uint64_t id, balancer::NodeIndex node, int attempt);
  void give_back(uint64_t id, balancer::NodeIndex node, bool reusable);

  Server& server_;
  uint64_t last_id_ = 0;
  std::unordered_map<uint64_t, Open> open_;  // by lease id
  std::unordered_map<const BackendConn*, uint64_t> ids_;
  std::vector<uint32_t> per_node_;
  std::vector<ClientConn*> ending_;   // leases to release once idle
  std::vector<uint64_t> dropped_;     // leases to close now
  std::vector<uint64_t> unblocking_;  // of clients gone while blocked: closed once answered
  std::vector<std::vector<uint64_t>> idle_;  // [idle_slot]: connected, no state, no lessee
  static size_t idle_slot(balancer::NodeIndex node, bool resp3) { return 2 * node + (resp3 ? 1 : 0); }
};

}  // namespace headroom::proxy
