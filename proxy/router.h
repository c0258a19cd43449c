// The request lifecycle after framing: route by the command table, place new keys,
// forward (raw bytes for one node, rebuilt fragments for several), and complete the
// request when its replies are in (merging fragments, in the client's key order).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "proxy/request.h"

namespace headroom::proxy {

class Server;

class Router {
 public:
  explicit Router(Server& server);

  // Called once per request, right after framing: looks the command up, resolves its
  // keys, and starts placing new keys (so a pipeline of new keys needs one round
  // trip to the main server, not one per key). Never completes the request.
  void prepare(Request* req);

  // Forwards the request, or answers it. Returns false when it must wait (a
  // placement is in flight); the client calls again (pump) when it may go on.
  bool dispatch(Request* req);

  // A node's reply (or the proxy's error in its place) for one fragment.
  void on_fragment_reply(Request* req, uint32_t fragment, std::string_view reply);

 private:
  enum class Lookup { kFound, kAbsent, kPlacing };
  // Where `key` lives. kAbsent: no entry (and none is being made for this request).
  Lookup lookup(Request* req, const resp::KeyRef& key, NodeIndex& node);
  // Starts placing `key` on `node` for `req`. false: the main server is unreachable.
  bool place(Request* req, std::string_view key, NodeIndex node);
  void placement_done(Request* req, const std::string& error);

  bool dispatch_single(Request* req);
  bool dispatch_split(Request* req);
  bool dispatch_same_node(Request* req);
  void dispatch_fan_out(Request* req);
  void dispatch_scan(Request* req);
  void dispatch_any(Request* req);

  // Sends `req`'s raw bytes to `node` as fragment 0.
  void forward_raw(Request* req, NodeIndex node);
  // Allocates a fragment for `node`; returns its index. Sends nothing.
  uint32_t add_fragment(Request* req, NodeIndex node);
  // True when `node` can take another command: connected, and under the in-flight
  // bound. Otherwise `error` says why (naming the node).
  bool backend_ready(NodeIndex node, std::string& error);

  void finish(Request* req);   // every fragment answered: merge and complete
  void complete(Request* req); // req->reply is set
  void reply_error(Request* req, std::string_view msg);
  void count_write(Request* req, NodeIndex node);
  void forget_deleted_keys(Request* req);
  bool any_node(NodeIndex& node);
  // A key with no entry has been placed by no proxy only while the directory is
  // current; otherwise (main server unreachable, reloading) this replies an error
  // and returns false: a nil read, or a DEL that deletes nothing, could be wrong.
  bool absence_known(Request* req);
  bool dangerous_allowed(std::string_view name) const;

  Server& server_;
  uint32_t any_rr_ = 0;
  std::vector<int> node_fragment_;  // scratch: node -> fragment index while splitting
};

}  // namespace headroom::proxy
