// Route::SameNode: several keys Redis must run together (RENAME, SMOVE, SUNIONSTORE,
// EVAL with keys, MSETNX, ...). Allowed when every key lives, or will be placed, on
// one node; otherwise a CROSSNODE error that names the nodes. Keys that share a
// hash tag always share a node.
#include <uv.h>

#include <algorithm>

#include "balancer/directory_scripts.h"
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

// rebalance.colocate (docs/moves.md, "Co-location on demand"): the keys living apart
// are asked to move to the node that holds most of them, and the command waits (as
// for any move, bounded by request_ms) until they share it, then runs there.
bool Router::colocate(Request* req) {
  const uint64_t now = uv_now(server_.loop());
  const uint64_t limit = server_.config().request_timeout_ms;
  if (req->colocating) {
    if (limit != 0 && now - req->moving_since_ms >= limit) return true;  // CROSSNODE after all
    server_.park_for_move(req->client);
    return false;
  }
  balancer::ControlConn* main = server_.publisher();
  if (main == nullptr) return true;
  std::vector<size_t> count(server_.nodes().size(), 0);
  for (int32_t n : req->key_nodes)
    if (n >= 0) ++count[static_cast<size_t>(n)];
  const auto target = static_cast<NodeIndex>(std::max_element(count.begin(), count.end()) - count.begin());
  const std::string prefix = "move " + server_.nodes()[target].name() + " ";
  for (size_t i = 0; i < req->keys.size(); ++i) {
    if (req->key_nodes[i] < 0 || req->key_nodes[i] == target) continue;
    const std::string ask = prefix + std::string(balancer::directory_key(req->argv[req->keys[i].argv_index]));
    main->post({"RPUSH", balancer::scripts::kAskedKey, ask});
  }
  ++server_.stats().colocations;
  req->colocating = true;
  req->moving_since_ms = now;
  server_.park_for_move(req->client);
  return false;
}

bool Router::route_same_node(Request* req) {
  int target = -1;
  std::string nodes;
  if (!common_node(req, target, nodes)) {
    if (req->done) return true;
    if (server_.config().rebalance.colocate && !colocate(req)) return false;
    reply_error(req, "CROSSNODE keys of '" + resp::to_lower(req->argv[0]) + "' live on different nodes (" + nodes +
                         "); keys that share a hash tag, like {user:42}:a and {user:42}:b, share a node" +
                         (req->colocating ? " (moving them together did not finish within request_ms)" : ""));
    return true;
  }
  if (req->blocking) return route_blocking(req, target);
  return forward_to_common_node(req, target);
}

}  // namespace headroom::proxy
