// One client request on its way through the proxy.
//
// The queues (the whole request lifecycle in one picture):
//
//   client socket ──read──▶ ClientConn::in_ ──RequestFramer──▶ Request (argv and raw
//        bytes are views into in_; nothing is copied while the request goes at once)
//                                                                │ pushed on
//                                                                ▼
//   ClientConn::queue_   [r1 done][r2 in flight][r3 waiting placement][r4 queued] ...
//        head ▲ replies are written from the head, only once the head is done,
//             │ so the client sees replies in its request order.
//             │
//   Router::prepare: command row, access checks, key positions, each key's node from
//   the directory, and placements started for keys that are new (so a pipeline of new
//   keys shares main-server round trips). Router::dispatch, in queue order: one
//   fragment (single key, any node), one per node (MGET/DEL/MSET..., every node for
//   fan-out), or none (answered locally). A request that waits for a placement copies
//   its bytes into `owned`; requests behind it on the same client wait too, so one
//   client's commands reach the nodes in the order it sent them.
//
//   BackendConn::out_  ──written once per loop turn──▶ node socket
//   BackendConn::inflight_  FIFO [(r1,frag0)(r2,frag1)(r5,frag0)...]
//        each framed reply pairs with the FIFO head (Redis answers in order). A client
//        always uses the same connection to a node, whatever backend_connections
//        says, so its commands to that node stay in order.
//
//   A fragment's reply completes its request (forwarded as is when it is the only
//   one, else kept until its siblings arrive and are merged in the client's key
//   order). Who frees a request: RequestPool, once the client is done with it (its
//   reply written, or the client gone) and nothing is outstanding (no fragment or
//   placement still to answer). A client that goes away leaves its requests
//   orphaned: they live until their last answer, which is dropped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/ledger.h"
#include "balancer/node_registry.h"
#include "resp/buffer.h"
#include "resp/command_table.h"

namespace headroom::proxy {

class ClientConn;
using balancer::NodeIndex;

// CLIENT REPLY ON, OFF or SKIP: what the request switches, from where its own reply
// falls in the client's replies (ClientConn applies it when that reply is written).
enum class ReplySwitch : uint8_t { None, On, Off, Skip };

// A fragment: one upstream command of a request, sent to one node.
struct Fragment {
  NodeIndex node = 0;
  uint32_t reply_offset = 0;  // where its reply lies in Request::fragment_replies
  uint32_t reply_length = 0;
};

struct Request {
  ClientConn* client = nullptr;  // nullptr once the client has gone: replies are dropped
  const resp::CommandInfo* cmd = nullptr;

  // The request's bytes and arguments (every argument lies inside `raw`). They point
  // into the client's input buffer while the request goes at once; one that waits
  // copies `raw` into `owned` first (take_ownership).
  std::vector<std::string_view> argv;
  std::string_view raw;
  resp::Buffer owned;

  std::vector<resp::KeyRef> keys;  // resolved key positions
  // Each key's node as the directory gave it (-1: no entry), and whether that entry
  // is retiring (a write that may create the key then revives it through the main
  // server first), as of directory version `lookup_version`: looked up once, again
  // only if the directory changed meanwhile.
  std::vector<int32_t> key_nodes;
  std::vector<uint8_t> key_retiring;
  uint64_t lookup_version = UINT64_MAX;
  uint64_t start_ns = 0;           // uv_hrtime of the read that brought it (proxy/latency.h)
  bool any_moving = false;         // a key's entry is moving: the request waits (docs/moves.md)
  uint64_t moving_since_ms = 0;    // since when it waits for a move (0: it does not)

  std::vector<Fragment> fragments;
  std::vector<uint16_t> group_fragment;  // Split: the fragment carrying each key group
  resp::Buffer fragment_replies;         // replies of fragments, until merged
  uint32_t fragments_pending = 0;
  uint32_t placements_pending = 0;
  int target_node = -1;        // SameNode: the node every new key is placed on
  uint32_t skip_replies = 0;   // EXEC: the block's replies before EXEC's (BackendConn::sent)
  bool unwatches = false;      // EXEC, DISCARD, UNWATCH: the client's lease ends once it is dispatched
  bool blocking = false;       // a blocking call, on a lease (route_blocking.cpp); its keys are held
  bool keys_invalid = false;   // arguments Redis will reject (numkeys too large, ...)
  bool flush_begun = false;    // FLUSHALL: counted on the main server (Router::begin_flush)
  bool failed = false;         // its reply is an error (INFO commandstats' failed_calls)
  bool colocating = false;     // SameNode: its keys were asked to move together (rebalance.colocate)
  bool block_writes = false;   // EXEC: the block holds a write (CLIENT PAUSE WRITE holds it)
  ReplySwitch reply_switch = ReplySwitch::None;  // CLIENT REPLY
  std::string error;           // a placement's failure, replied when the request goes

  bool done = false;        // `reply` holds the complete reply
  bool owner_done = false;  // the client wrote the reply or left (RequestPool)

  // Bytes reserved in the ledger for the keys this request places, each ended once
  // (balancer::Ledger::write_done) when its node answers or the request ends.
  struct Placed {
    balancer::Reservation reservation;
    uint32_t key = 0;      // index into keys: the key placed
    bool ended = false;
    uint64_t asked_ns = 0;  // uv_hrtime() when asked of the main server (placement latency)
  };
  std::vector<Placed> placed;
  resp::Buffer reply;

  uint32_t outstanding() const { return fragments_pending + placements_pending; }

  // Copies the raw bytes into `owned` and points argv there, so the request outlives
  // the input buffer it was framed from.
  void take_ownership() {
    if (!owned.empty() || raw.empty()) return;
    owned.append(raw);
    const char* from = raw.data();
    const char* to = owned.data();
    for (auto& a : argv) a = std::string_view(to + (a.data() - from), a.size());
    raw = owned.view();
  }

  void reset() {
    client = nullptr;
    cmd = nullptr;
    argv.clear();
    raw = {};
    owned.clear();
    keys.clear();
    key_nodes.clear();
    key_retiring.clear();
    lookup_version = UINT64_MAX;
    any_moving = false;
    moving_since_ms = 0;
    fragments.clear();
    group_fragment.clear();
    fragment_replies.clear();
    fragments_pending = placements_pending = 0;
    target_node = -1;
    skip_replies = 0;
    unwatches = false;
    blocking = false;
    keys_invalid = false;
    flush_begun = false;
    failed = false;
    colocating = false;
    block_writes = false;
    reply_switch = ReplySwitch::None;
    error.clear();
    done = owner_done = false;
    placed.clear();
    reply.clear();
    // Pooled requests keep small buffers only: a large request's memory goes back.
    constexpr size_t kKeep = 16 * 1024;
    owned.shrink_if_idle(kKeep);
    fragment_replies.shrink_if_idle(kKeep);
    reply.shrink_if_idle(kKeep);
  }
};

}  // namespace headroom::proxy
