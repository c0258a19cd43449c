// Route::Single (a key's node) and Route::AnyNode (keyless, node-independent).
#include "proxy/router.h"
#include "proxy/server.h"

namespace headroom::proxy {

bool Router::route_single(Request* req) {
  if (req->keys.empty()) {  // an optional key left out (Redis then routes by nothing)
    route_any(req);
    return true;
  }
  if (req->keys[0].may_create) {
    if (!place_new_keys(req)) return req->done;  // waits for the key's placement, or failed
  } else {
    look_up_keys(req);
  }
  NodeIndex node = 0;
  if (req->key_nodes[0] >= 0) {
    node = static_cast<NodeIndex>(req->key_nodes[0]);
  } else {
    // A read of a key no proxy has placed: any node gives Redis's exact reply for a
    // missing key (nil, 0, -2, empty array, "none").
    if (!absence_known(req)) return true;
    if (!any_node(node)) {
      reply_error(req, "ERR no data node is available");
      return true;
    }
  }
  forward_raw(req, node);
  return true;
}

void Router::route_any(Request* req) {
  NodeIndex node = 0;
  if (!any_node(node)) {
    reply_error(req, "ERR no data node is available");
    return;
  }
  forward_raw(req, node);
}

}  // namespace headroom::proxy
