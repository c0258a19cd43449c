// Route::SameNode: several keys Redis must run together (RENAME, SMOVE, SUNIONSTORE,
// EVAL with keys, MSETNX, ...). Allowed when every key lives, or will be placed, on
// one node; otherwise a CROSSNODE error that names the nodes. Keys that share a
// hash tag always share a node.
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/ascii.h"

namespace headroom::proxy {

bool Router::common_node(Request* req, int& target, std::string& nodes) {
  look_up_keys(req);
  target = -1;
  nodes.clear();
  bool cross = false;
  for (size_t i = 0; i < req->keys.size(); ++i) {
    int n = req->key_nodes[i];
    if (n >= 0) {
      if (target < 0) {
        target = n;
        nodes = server_.nodes()[static_cast<NodeIndex>(n)].name();
      } else if (target != n) {
        cross = true;
        nodes += ", " + server_.nodes()[static_cast<NodeIndex>(n)].name();
      }
    } else if (!req->keys[i].may_create && !absence_known(req)) {
      return false;
    }
  }
  if (cross) ++server_.stats().crossnode_errors;
  return !cross;
}

bool Router::forward_to_common_node(Request* req, int target) {
  // New keys go to the existing keys' node; once placed this runs again, and a key
  // another proxy placed elsewhere meanwhile gives CROSSNODE.
  if (!place_new_keys(req)) return req->done;
  NodeIndex node = 0;
  if (target >= 0) {
    node = static_cast<NodeIndex>(target);
  } else if (!any_node(node)) {
    reply_error(req, "ERR no data node is available");
    return true;
  }
  forward_raw(req, node);
  return true;
}

bool Router::route_same_node(Request* req) {
  int target = -1;
  std::string nodes;
  if (!common_node(req, target, nodes)) {
    if (!req->done)
      reply_error(req, "CROSSNODE keys of '" + resp::to_lower(req->argv[0]) + "' live on different nodes (" +
                           nodes + "); keys that share a hash tag, like {user:42}:a and {user:42}:b, share a node");
    return true;
  }
  if (req->blocking) return route_blocking(req, target);
  return forward_to_common_node(req, target);
}

}  // namespace headroom::proxy
