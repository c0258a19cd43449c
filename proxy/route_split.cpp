// Route::Split: independent keys (MGET, MSET, DEL, EXISTS, ...). Split by node, not
// by key: one fragment per node carrying that node's key groups, in the client's
// order; Request::group_fragment records which fragment carries each group, so the
// merge puts the replies back in the client's key order. When every key is on one
// node the request is forwarded as it came.
#include <array>

#include "proxy/backend_conn.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

bool Router::route_split(Request* req) {
  const auto& cmd = *req->cmd;
  const size_t groups = req->keys.size();
  if (groups == 0) {
    route_any(req);
    return true;
  }
  if (!place_new_keys(req)) return req->done;  // MSET: waits for every new key's placement

  // Group the keys by node; keys no proxy has placed go to one node of our choice.
  std::array<int16_t, 256> fragment_of_node;  // nodes are at most 255 (conf)
  fragment_of_node.fill(-1);
  req->group_fragment.resize(groups);
  int absent_node = -1;
  for (size_t g = 0; g < groups; ++g) {
    int node = req->key_nodes[g];
    if (node < 0) {
      if (absent_node < 0) {
        NodeIndex any = 0;
        if (!absence_known(req)) return true;
        if (!any_node(any)) {
          reply_error(req, "ERR no data node is available");
          return true;
        }
        absent_node = any;
      }
      node = absent_node;
    }
    if (fragment_of_node[node] < 0) fragment_of_node[node] = static_cast<int16_t>(add_fragment(req, static_cast<NodeIndex>(node)));
    req->group_fragment[g] = static_cast<uint16_t>(fragment_of_node[node]);
  }
  if (req->fragments.size() == 1) {  // every key on one node: forward as is
    NodeIndex node = req->fragments[0].node;
    req->fragments.clear();
    forward_raw(req, node);
    return true;
  }
  // Every node must be able to take its fragment before any is sent: a split
  // request goes whole or not at all.
  std::array<BackendConn*, 256> conns;
  for (size_t f = 0; f < req->fragments.size(); ++f) {
    conns[f] = ready_backend(req, req->fragments[f].node);
    if (conns[f] == nullptr) {
      req->fragments.clear();
      return true;
    }
  }
  // One fragment per node: the command name, then each of its key groups' arguments.
  const size_t step = static_cast<size_t>(std::max<int16_t>(1, cmd.key_specs[0].keystep));
  for (uint32_t f = 0; f < req->fragments.size(); ++f) {
    size_t mine = 0;
    for (size_t g = 0; g < groups; ++g) mine += req->group_fragment[g] == f;
    resp::Buffer& out = conns[f]->out();
    resp::add_array_header(out, static_cast<int64_t>(1 + mine * step));
    resp::add_bulk(out, req->argv[0]);
    for (size_t g = 0; g < groups; ++g) {
      if (req->group_fragment[g] != f) continue;
      uint32_t at = req->keys[g].argv_index;
      for (size_t s = 0; s < step; ++s) resp::add_bulk(out, req->argv[at + s]);
    }
    sent(req, *conns[f], f);
  }
  ++server_.stats().commands_forwarded;
  return true;
}

}  // namespace headroom::proxy
