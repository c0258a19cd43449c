// Polls `INFO memory keyspace` on every data node every poll_interval_ms, on one
// control connection per node, and keeps NodeState's figures current. A node whose
// poll goes unanswered for three intervals (a hung node: SIGSTOP, a full kernel
// buffer) is marked unreachable, so it gets no new keys, until it answers again.
//
// The correction window: written_since_poll counts bytes sent to a node after the
// poll request whose answer is in used_memory. When a poll is sent we remember the
// node's written_total; when its answer arrives, written_since_poll becomes what was
// written after that moment.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "balancer/control_conn.h"
#include "balancer/node_registry.h"

namespace headroom::balancer {

class MemoryPoller {
 public:
  MemoryPoller(uv_loop_t* loop, NodeRegistry& nodes, uint32_t interval_ms,
               const std::unique_ptr<proxy::TlsContext>& tls);
  ~MemoryPoller();

  void start();
  void stop();

 private:
  static void on_tick(uv_timer_t* t);
  void poll(NodeIndex i);

  uv_loop_t* loop_;
  NodeRegistry& nodes_;
  uint32_t interval_ms_;
  const std::unique_ptr<proxy::TlsContext>& tls_;  // backend_tls's slot (empty: plaintext)
  uv_timer_t* timer_;  // owned; freed in its close callback
  std::vector<std::unique_ptr<ControlConn>> conns_;
  std::vector<bool> in_flight_;
  std::vector<uint64_t> sent_ms_;  // when the poll in flight was sent
};

// Parses the figures out of an INFO reply (exposed for tests).
void apply_info(NodeState& node, std::string_view info);

}  // namespace headroom::balancer
