// The request lifecycle after framing, driven by the command table: access checks,
// key positions and each key's node, placement of new keys, then the route the row
// names (each route kind in a file of its own), and the replies back: forwarded as
// they are from one node, merged in the client's key order from several.
//
//   router.cpp           prepare, dispatch, placements, replies, what routes share
//   route_single.cpp     Single (a key's node) and AnyNode (keyless, any node)
//   route_split.cpp      Split: one fragment per node, merged by the row's Merge
//   route_same_node.cpp  SameNode: every key on one node, else CROSSNODE
//   route_fan_out.cpp    FanOut: every node (SCAN walks them; FLUSHALL flushes the directory too)
//   route_transaction.cpp  MULTI ... EXEC: queued by the proxy, run on one node as one block
//   route_blocking.cpp   BLPOP, XREAD BLOCK, ...: on a lease, their keys held, nothing popped lost
//   route_pubsub.cpp     (UN)SUBSCRIBE, PUBLISH, PUBSUB: the clients' channels on the main server
//   route_admin.cpp      HEADROOM: nodes, drain, rebalance, move (shared through the main server)
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/main_store.h"
#include "proxy/request.h"

namespace headroom::proxy {

class BackendConn;
class Server;

// The name a refusal gives: what the client typed ("config get", "subscribe").
std::string typed_name(const resp::CommandInfo& cmd, std::span<const std::string_view> argv);

class Router {
 public:
  explicit Router(Server& server);
  // The config was reloaded: what it allows is read again.
  void config_changed();

  // Called once per request, right after framing: looks the command up, checks
  // access, resolves its keys and their nodes, and starts placing new keys (so a
  // pipeline of new keys needs one round trip to the main server, not one per key).
  // May complete the request (with an error); never sends it anywhere.
  void prepare(Request* req);

  // Forwards the request, or answers it. false: it must wait (a placement is in
  // flight); the client calls again (pump) when it may go on.
  bool dispatch(Request* req);

  // A node's reply (or the proxy's error in its place) for one fragment.
  void on_fragment_reply(Request* req, uint32_t fragment, std::string_view reply);

 private:
  // --- routes (one file each)
  bool route_single(Request* req);
  void route_any(Request* req);
  bool route_split(Request* req);
  bool route_same_node(Request* req);
  // rebalance.colocate: false while the keys are being moved together (the request waits).
  bool colocate(Request* req);
  bool route_fan_out(Request* req);
  bool begin_flush(Request* req);  // FLUSHALL's first step: counted on the main server
  void route_scan(Request* req);
  void route_control(Request* req);
  // MULTI, EXEC and DISCARD, at prepare: EXEC turns the request into the whole block.
  void transaction_command(Request* req);
  // A command inside MULTI: checked (its keys on the transaction's node) and queued.
  void queue_in_transaction(Request* req);
  bool route_transaction(Request* req);
  bool route_watch(Request* req);
  bool route_pubsub(Request* req);
  bool route_admin(Request* req);  // HEADROOM (route_admin.cpp)
  std::string nodes_report();      // HEADROOM NODES
  // A blocking call (BLPOP, XREAD BLOCK, ...), its keys on `target` (or to be placed).
  bool route_blocking(Request* req, int target);
  // Its reply came: the keys' holds end, the client may go on; a client gone
  // meanwhile gets nothing, so what the reply popped is given back.
  void blocking_answered(Request* req, std::string_view reply);
  // EXEC, DISCARD or UNWATCH was dispatched: the client's lease ends once idle.
  void unwatch(Request* req);

  // SameNode and EXEC: the node every key with an entry lives on (`target`, -1 when
  // none has one). false when they live on several (`nodes` names them), or when a
  // key's absence cannot be known (then the request has been answered).
  bool common_node(Request* req, int& target, std::string& nodes);
  // Places the new keys on `target` (or where the first is placed), then forwards.
  bool forward_to_common_node(Request* req, int target);

  // --- shared by the routes (router.cpp)
  // Fills req->key_nodes from the directory, unless it did so since the directory
  // last changed.
  void look_up_keys(Request* req);
  // false: a key is being moved, the request waits (its client is pumped when a move ends).
  bool await_moves(Request* req);
  // The one placement path: every key that may be created and has no entry gets a
  // placement (SameNode: all on one node). true when none is needed, so the request
  // may go; false when it waits for placements, or failed (then it is done).
  bool place_new_keys(Request* req);
  void on_placed(Request* req, const balancer::PlaceResult& result);
  // The connection `req`'s client uses to `node`, when it can take a command now
  // (connected, under max_backend_inflight); else completes `req` with the reason.
  BackendConn* ready_backend(Request* req, NodeIndex node);
  // Sends `req`'s raw bytes to `node` as its only fragment.
  void forward_raw(Request* req, NodeIndex node);
  uint32_t add_fragment(Request* req, NodeIndex node);
  // A fragment was sent on `b`.
  void sent(Request* req, BackendConn& b, uint32_t fragment);
  // The ledger learns what a fragment's write did to its node.
  void account(Request* req, const Fragment& f, std::string_view reply);
  void check_created(Request* req, const Request::Placed& p, std::string_view reply, bool error);
  // FLUSHALL answered by every node: the directory's entries retire.
  void mark_flushed(Request* req);
  bool any_node(NodeIndex& node);
  // A key with no entry has been placed by no proxy only while the directory is
  // current; otherwise (main server unreachable, reloading) this replies an error
  // and returns false: a nil read, or a DEL that deletes nothing, could be wrong.
  bool absence_known(Request* req);
  void finish(Request* req);
  void persistence_may_change(const Request& req);  // every fragment answered: merge and complete
  void complete(Request* req) { req->done = true; }
  void reply_error(Request* req, std::string_view msg);
  // reply_error for a command Redis would refuse: inside MULTI, it discards the transaction.
  void reject(Request* req, std::string_view msg);
  std::string main_unavailable(std::string_view what) const;

  Server& server_;
  uint32_t any_rr_ = 0;
  std::vector<bool> allowed_dangerous_;  // per command row: named by allow_dangerous_commands
  std::vector<BackendConn*> fan_out_conns_;  // scratch: one connection per node
};

}  // namespace headroom::proxy
