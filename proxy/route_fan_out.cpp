// Route::FanOut: commands with no key asked of every data node (DBSIZE, KEYS,
// RANDOMKEY, FLUSHALL, CONFIG SET, SCRIPT LOAD), merged by the row's Merge; a
// kFlushes command flushes the directory on the main server as one more fragment;
// a kOnControlConn one (SCRIPT KILL) goes on each node's control connection. SCAN walks the
// nodes one after another, its cursor naming the node.
#include <spdlog/spdlog.h>

#include <charconv>

#include "balancer/directory_scripts.h"
#include "proxy/backend_conn.h"
#include "proxy/client_conn.h"
#include "proxy/reply_encode.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

bool Router::route_fan_out(Request* req) {
  if (req->cmd->has(resp::kOnControlConn)) {
    route_control(req);
    return true;
  }
  const bool flush = req->cmd->has(resp::kFlushes);
  if (flush && !req->flush_begun) return begin_flush(req);
  const size_t n = server_.nodes().size();
  std::vector<BackendConn*>& conns = fan_out_conns_;
  conns.resize(n);
  for (NodeIndex i = 0; i < n; ++i) {
    conns[i] = ready_backend(req, i);
    if (conns[i] == nullptr) return true;
  }
  for (NodeIndex i = 0; i < n; ++i) add_fragment(req, i);
  for (NodeIndex i = 0; i < n; ++i) {
    if (flush) {
      // FLUSHALL and FLUSHDB empty database 0 only: headroom serves no other, and the
      // nodes keep its fence markers in database 1 (docs/directory.md).
      resp::Buffer& out = conns[i]->out();
      resp::add_array_header(out, static_cast<int64_t>(req->argv.size()));
      resp::add_bulk(out, "FLUSHDB");
      for (size_t a = 1; a < req->argv.size(); ++a) resp::add_bulk(out, req->argv[a]);
    } else {
      conns[i]->out().append(req->raw);
    }
    sent(req, *conns[i], i);
  }
  ++server_.stats().commands_forwarded;
  return true;
}

// Before any node is flushed, the main server counts the FLUSHALL begun: a move that
// copied a key meanwhile sees the count changed and does not commit (docs/moves.md),
// so no key copied into a node after its flush survives the FLUSHALL.
bool Router::begin_flush(Request* req) {
  balancer::ControlConn* main = server_.publisher();
  if (main == nullptr) {
    reply_error(req, main_unavailable("FLUSHALL and FLUSHDB need it (the directory is flushed too)"));
    return true;
  }
  ++req->placements_pending;
  // Up (checked above): sent.
  (void)main->command({"INCR", balancer::scripts::kFlushesKey}, [this, req](redisReply* r) {
    --req->placements_pending;
    req->flush_begun = true;
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) req->error = main_unavailable("the FLUSHALL was not begun");
    if (req->owner_done) {
      server_.requests().settle(req);
      return;
    }
    req->client->pump();
  });
  return false;
}


// SCRIPT KILL and FUNCTION KILL: on each node's control connection (the memory
// poller's). The client that runs the script may share the node's data connection
// with this one, and Redis reads no more from that connection until its script ends.
void Router::route_control(Request* req) {
  const size_t n = server_.nodes().size();
  for (NodeIndex i = 0; i < n; ++i) {
    if (server_.poller().conn(i) == nullptr) {
      reply_error(req, "ERR node " + server_.nodes()[i].name() + " is unavailable (its control connection is down)");
      return;
    }
  }
  for (NodeIndex i = 0; i < n; ++i) {
    const uint32_t f = add_fragment(req, i);
    ++req->fragments_pending;
    // Up (checked above): sent.
    (void)server_.poller().conn(i)->command(req->argv, [this, req, f, i](redisReply* r) {
      resp::Buffer reply;
      encode_reply(r, reply);
      if (reply.empty()) resp::add_error(reply, "ERR node " + server_.nodes()[i].name() + " connection lost");
      on_fragment_reply(req, f, reply.view());
    });
  }
  ++server_.stats().commands_forwarded;
}

// Every node answered a FLUSHALL: each entry of the directory is retiring now, and
// the coordinator removes them as it confirms their keys are gone. Entries keep
// routing meanwhile, so a write during the flush lands under an entry that names its
// node. Best effort: with the main server down the sweep finds them later.
void Router::mark_flushed(Request* req) {
  for (const auto& f : req->fragments) {
    std::string_view r(req->fragment_replies.data() + f.reply_offset, f.reply_length);
    if (r != "+OK\r\n") return;  // not every node was emptied
  }
  server_.main_store().mark_flushed([](std::string_view error) {
    if (!error.empty()) spdlog::warn("FLUSHALL: the nodes are empty; the directory's entries are not marked: {}", error);
  });
}

// SCAN's cursor names the node: client cursor = node cursor << 8 | node index. A full
// scan walks node 0 to the end, then node 1, ... so it visits every data node once.
void Router::route_scan(Request* req) {
  uint64_t cursor = 0;
  std::string_view c = req->argv[1];
  auto r = std::from_chars(c.data(), c.data() + c.size(), cursor);
  if (r.ec != std::errc() || r.ptr != c.data() + c.size()) {
    reply_error(req, "ERR invalid cursor");
    return;
  }
  NodeIndex node = static_cast<NodeIndex>(cursor & 0xff);
  if (node >= server_.nodes().size()) {
    reply_error(req, "ERR invalid cursor");
    return;
  }
  BackendConn* b = ready_backend(req, node);
  if (b == nullptr) return;
  uint32_t f = add_fragment(req, node);
  char num[24];
  auto end = std::to_chars(num, num + sizeof num, cursor >> 8).ptr;
  resp::Buffer& out = b->out();
  resp::add_array_header(out, static_cast<int64_t>(req->argv.size()));
  resp::add_bulk(out, req->argv[0]);
  resp::add_bulk(out, std::string_view(num, static_cast<size_t>(end - num)));
  for (size_t i = 2; i < req->argv.size(); ++i) resp::add_bulk(out, req->argv[i]);
  sent(req, *b, f);
  ++server_.stats().commands_forwarded;
}

}  // namespace headroom::proxy
