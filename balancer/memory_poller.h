// Polls `INFO memory keyspace` on every data node every poll_interval_ms, on one
// control connection per node, and gives the figures to the placement ledger. A node
// whose poll goes unanswered for three intervals (a hung node: SIGSTOP, a full kernel
// buffer) is marked unreachable, so it gets no new keys, until it answers again.
#pragma once

#include <uv.h>

#include <memory>
#include <string_view>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/ledger.h"
#include "balancer/node_registry.h"

namespace headroom::balancer {

class MemoryPoller {
 public:
  MemoryPoller(uv_loop_t* loop, NodeRegistry& nodes, Ledger& ledger, uint32_t interval_ms,
               const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts);
  ~MemoryPoller();

  void start();
  void stop();
  // Starts polling node i (at start, and for a node a reload added).
  void node_added(NodeIndex i);

  // Node i's control connection while it is up (else nullptr): for the few commands
  // that must not wait behind the data connection (SCRIPT KILL).
  ControlConn* conn(NodeIndex i) { return i < conns_.size() && conns_[i] && conns_[i]->up() ? conns_[i].get() : nullptr; }

 private:
  static void on_tick(uv_timer_t* t);
  void poll(NodeIndex i);

  uv_loop_t* loop_;
  NodeRegistry& nodes_;
  Ledger& ledger_;
  uint32_t interval_ms_;
  const std::unique_ptr<net::TlsContext>& tls_;  // backend_tls's slot (empty: plaintext)
  ControlTimeouts timeouts_;
  uv_timer_t* timer_;  // owned; freed in its close callback
  std::vector<std::unique_ptr<ControlConn>> conns_;
  std::vector<bool> in_flight_;
  std::vector<uint64_t> sent_ms_;  // when the poll in flight was sent
};

// The figures in an INFO reply (exposed for tests).
NodeFigures parse_info(std::string_view info);
// Its persistence section's state (INFO persistence through headroom).
NodeState::Persistence parse_persistence(std::string_view info);

}  // namespace headroom::balancer
