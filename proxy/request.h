// One client request on its way through the proxy.
//
// The queues (the whole request lifecycle in one picture):
//
//   client socket ──read──▶ ClientConn::in_ ──RequestParser──▶ Request
//                                                                │ pushed on
//                                                                ▼
//   ClientConn::queue_   [r1 done][r2 in flight][r3 waiting placement][r4 queued] ...
//        head ▲ replies are written from the head, only once the head is done,
//             │ so the client sees replies in its request order.
//             │
//   Router: each request becomes one fragment (single key, any node), several (one per
//   node for MGET/DEL/MSET..., every node for fan-out), or none (answered locally).
//   A request that must place a new key first waits for the main server; requests
//   behind it on the same client wait too, so one client's commands reach the nodes
//   in the order it sent them.
//
//   BackendConn::out_  ──one uv_write per loop turn──▶ node socket
//   BackendConn::inflight_  FIFO [(r1,frag0)(r2,frag1)(r5,frag0)...]
//        each framed reply pairs with the FIFO head (Redis answers in order).
//
//   A fragment's reply completes its request (or is kept until its siblings arrive
//   and are merged). A client that goes away leaves its requests "orphaned": they
//   stay alive until every outstanding fragment and placement has answered, and
//   their replies are dropped.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "balancer/node_registry.h"
#include "resp/buffer.h"
#include "resp/command_table.h"

namespace headroom::proxy {

class ClientConn;
using balancer::NodeIndex;

// A fragment: one upstream command of a request, sent to one node.
struct Fragment {
  NodeIndex node = 0;
  uint32_t reply_offset = 0;  // where its reply lies in Request::fragment_replies
  uint32_t reply_length = 0;
  bool done = false;
  std::vector<uint32_t> groups;  // Split: key groups (in client order) this fragment carries
};

struct Request {
  ClientConn* client = nullptr;  // nullptr once the client has gone: replies are dropped
  const resp::CommandInfo* cmd = nullptr;

  // The request's bytes and arguments. `argv` points into the client's input buffer
  // while the request is dispatched straight from the read; a request that waits
  // (for a placement, or behind one) first copies them into `owned_*`.
  std::vector<std::string_view> argv;
  std::string_view raw;
  resp::Buffer owned_raw;
  resp::Buffer owned_args;

  std::vector<resp::KeyRef> keys;         // resolved key positions
  std::vector<Fragment> fragments;
  resp::Buffer fragment_replies;          // replies of fragments, until merged
  uint32_t fragments_pending = 0;
  uint32_t placements_pending = 0;
  int target_node = -1;                   // SameNode: the node every key must be on
  bool keys_invalid = false;              // arguments Redis will reject (numkeys too large, ...)
  std::string placement_error;            // first placement failure, if any

  bool dispatched = false;  // forwarded, or answered
  bool done = false;        // `reply` holds the complete reply
  // Bytes reserved on nodes by this request's placements (see Server::free_request).
  struct Reservation {
    NodeIndex node;
    uint64_t bytes;
  };
  std::vector<Reservation> reservations;
  resp::Buffer reply;

  void reset() {
    client = nullptr;
    cmd = nullptr;
    argv.clear();
    raw = {};
    owned_raw.clear();
    owned_args.clear();
    keys.clear();
    fragments.clear();
    fragment_replies.clear();
    fragments_pending = placements_pending = 0;
    target_node = -1;
    keys_invalid = false;
    placement_error.clear();
    dispatched = done = false;
    reservations.clear();
    reply.clear();
    // Pooled requests keep small buffers only: a large reply's memory goes back.
    constexpr size_t kKeep = 16 * 1024;
    owned_raw.shrink_if_idle(kKeep);
    owned_args.shrink_if_idle(kKeep);
    fragment_replies.shrink_if_idle(kKeep);
    reply.shrink_if_idle(kKeep);
  }

  // Copies raw bytes and arguments into owned storage so they outlive the input buffer.
  void take_ownership() {
    if (!owned_raw.empty() || raw.empty()) return;
    owned_raw.append(raw);
    raw = owned_raw.view();
    size_t total = 0;
    for (auto a : argv) total += a.size();
    owned_args.clear();
    owned_args.writable(total + 1);
    const char* base = owned_args.data();
    size_t off = 0;
    for (auto& a : argv) {
      owned_args.append(a);
      a = std::string_view(base + off, a.size());
      off += a.size();
    }
  }
};

}  // namespace headroom::proxy
