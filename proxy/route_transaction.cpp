// Route::Transaction: MULTI ... EXEC (proxy/transaction.h). The commands are queued
// by the proxy and answered +QUEUED; each key must live on the transaction's node or
// have no entry yet (a key elsewhere is a queued error, CROSSNODE, and EXEC then
// discards everything, as Redis discards a transaction with a bad command). EXEC
// becomes one request whose bytes are the whole block, MULTI, the commands, EXEC:
// its new keys are placed on the transaction's node, the block goes to that node on
// the client's connection, and EXEC's reply, the transaction's, is forwarded.
//
// WATCH needs the node to remember it for this client: the client leases a
// connection of its own to the watched keys' node (proxy/leases.h) and every command
// of its to that node goes there until EXEC, DISCARD or UNWATCH ends the watch; the
// transaction's node is then that node.
#include <algorithm>

#include "balancer/directory.h"
#include "balancer/placement.h"
#include "proxy/client_conn.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

using resp::LocalCommand;
using resp::Route;

namespace {
constexpr std::string_view kMulti = "*1\r\n$5\r\nMULTI\r\n";
constexpr std::string_view kExec = "*1\r\n$4\r\nEXEC\r\n";

void reply_status(Request* req, std::string_view status) {
  req->reply.clear();
  req->reply.append(status);
  req->done = true;
}
}  // namespace

void Router::transaction_command(Request* req) {
  Transaction& tx = req->client->transaction();
  switch (req->cmd->local) {
    case LocalCommand::Multi:
      if (tx.open) {
        reply_error(req, "ERR MULTI calls can not be nested");  // as Redis: the transaction goes on
        return;
      }
      tx.open = true;  // (a WATCH's node is checked at EXEC: the WATCH may not have gone yet)
      reply_status(req, "+OK\r\n");
      return;
    case LocalCommand::Discard:
      if (!tx.open) {
        reply_error(req, "ERR DISCARD without MULTI");
        return;
      }
      tx.clear();
      req->unwatches = true;
      reply_status(req, "+OK\r\n");
      return;
    case LocalCommand::Watch:
      if (tx.open) {
        reply_error(req, "ERR WATCH inside MULTI is not allowed");  // as Redis: the transaction goes on
        return;
      }
      resp::resolve_keys(*req->cmd, req->argv, req->keys);
      return;  // dispatch watches, on the client's lease
    case LocalCommand::Unwatch:
      if (tx.open) {
        queue_in_transaction(req);  // queued, as Redis queues it
        return;
      }
      req->unwatches = true;
      if (req->client->lease().conn == nullptr) reply_status(req, "+OK\r\n");  // nothing watched
      return;  // else dispatch sends it on the lease, which then ends
    case LocalCommand::Exec:
      break;
    default:
      return;
  }
  if (!tx.open) {
    reply_error(req, "ERR EXEC without MULTI");
    return;
  }
  req->unwatches = true;  // EXEC ends the watch, as in Redis, whatever it answers
  if (tx.failed) {
    tx.clear();
    reply_error(req, "EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  if (tx.watch_broken) {  // as Redis answers a transaction whose watched key changed
    tx.clear();
    resp::add_nil_array(req->reply, req->client->resp3());
    req->done = true;
    return;
  }
  if (tx.commands == 0) {
    tx.clear();
    reply_status(req, "*0\r\n");
    return;
  }
  // The request becomes the block; its arguments and keys are the queued commands'.
  req->owned.clear();
  req->owned.append(kMulti);
  req->owned.append(tx.queued.view());
  req->owned.append(kExec);
  req->raw = req->owned.view();
  const char* base = req->owned.data() + kMulti.size();
  req->argv.clear();
  for (const auto& a : tx.args) req->argv.emplace_back(base + a.offset, a.size);
  req->keys.swap(tx.keys);
  req->skip_replies = tx.commands + 1;  // MULTI's +OK and each +QUEUED
  req->block_writes = tx.writes;
  tx.clear();
  for (const auto& k : req->keys) {
    if (k.may_create) {
      place_new_keys(req);  // as for any write: placements start at once
      return;
    }
  }
}

void Router::queue_in_transaction(Request* req) {
  Transaction& tx = req->client->transaction();
  const resp::CommandInfo& cmd = *req->cmd;
  std::span<const std::string_view> argv(req->argv);
  // What one node answers can be queued there; what the proxy answers, or gathers from
  // every node, cannot be part of one node's transaction. PING and ECHO the node
  // answers as the proxy would.
  const bool on_one_node = cmd.route == Route::Single || cmd.route == Route::Split ||
                           cmd.route == Route::SameNode || cmd.route == Route::AnyNode ||
                           cmd.local == LocalCommand::Ping || cmd.local == LocalCommand::Echo ||
                           cmd.local == LocalCommand::Unwatch;
  if (!on_one_node) {
    reject(req, "ERR command '" + typed_name(cmd, argv) +
                    "' cannot run inside a transaction through headroom: it is not one node's to answer");
    return;
  }
  // Arguments that cannot hold valid keys: the node refuses the command when it is
  // queued there, and EXEC answers EXECABORT, as Redis does.
  if (!cmd.key_specs.empty() && !resp::resolve_keys(cmd, argv, req->keys)) req->keys.clear();
  look_up_keys(req);
  for (size_t i = 0; i < req->keys.size(); ++i) {
    const int n = req->key_nodes[i];
    if (n < 0) continue;
    std::string_view key = req->argv[req->keys[i].argv_index];
    if (tx.node < 0) {
      tx.node = n;
      tx.node_key = key;
    } else if (n != tx.node) {
      const auto& watched = req->client->lease().watched;
      if (std::find(watched.begin(), watched.end(), key) != watched.end()) {
        // Watched with no entry, and placed on another node since: it was created
        // meanwhile, a change, so EXEC fails as Redis fails it (nil), running nothing.
        tx.watch_broken = true;
        continue;
      }
      ++server_.stats().crossnode_errors;
      reject(req, "CROSSNODE key '" + std::string(key.substr(0, 128)) + "' lives on node " +
                      server_.nodes()[static_cast<NodeIndex>(n)].name() + " and the transaction's key '" +
                      tx.node_key.substr(0, 128) + "' on node " +
                      server_.nodes()[static_cast<NodeIndex>(tx.node)].name() +
                      ": a transaction's keys must share a node (keys that share a hash tag, like "
                      "{user:42}:a and {user:42}:b, do)");
      return;
    }
  }
  if (tx.queued.size() + req->raw.size() > server_.config().max_request_bytes) {
    reject(req, "ERR transaction larger than max_request_bytes (" +
                    std::to_string(server_.config().max_request_bytes) + " bytes)");
    tx.queued.clear();  // it will be discarded: its memory goes now
    tx.args.clear();
    tx.keys.clear();
    return;
  }
  const uint32_t first_arg = static_cast<uint32_t>(tx.args.size());
  const size_t offset = tx.queued.size();
  for (auto a : argv)
    tx.args.push_back({static_cast<uint32_t>(offset + static_cast<size_t>(a.data() - req->raw.data())),
                       static_cast<uint32_t>(a.size())});
  tx.queued.append(req->raw);
  tx.writes |= cmd.has(resp::kWrite) || cmd.has(resp::kMayReplicate);
  for (const auto& k : req->keys) tx.keys.push_back({k.argv_index + first_arg, k.may_create});
  ++tx.commands;
  reply_status(req, "+QUEUED\r\n");
}

bool Router::route_transaction(Request* req) {
  switch (req->cmd->local) {
    case LocalCommand::Watch:
      return route_watch(req);
    case LocalCommand::Unwatch:
      if (Lease& lease = req->client->lease(); lease.conn != nullptr && !lease.lost) {
        forward_raw(req, lease.node);  // on the lease, in order
        lease.node_watches = false;
      }
      else
        reply_status(req, "+OK\r\n");  // it ended (or was lost) meanwhile: nothing is watched
      unwatch(req);
      return true;
    case LocalCommand::Exec:
      break;
    default:
      return true;  // answered in prepare
  }
  Lease& lease = req->client->lease();
  int target = -1;
  std::string nodes;
  if (!common_node(req, target, nodes)) {
    // Checked as the commands were queued; a key placed elsewhere by another proxy
    // since then can still split them.
    if (!req->done)
      reply_error(req, "EXECABORT Transaction discarded: its keys now live on different nodes (" + nodes + ")");
    unwatch(req);
    return true;
  }
  if (lease.conn != nullptr && !lease.watched.empty()) {  // a live WATCH: the transaction runs where it watches
    if (lease.lost) {
      reply_error(req, "EXECABORT Transaction discarded: the connection to node " +
                           server_.nodes()[lease.node].name() + " that held its WATCH was lost");
      unwatch(req);
      return true;
    }
    // A watched key placed on another node since the WATCH (it had no entry then) was
    // created meanwhile, out of the watching node's sight: the transaction fails as
    // Redis fails one whose watched key changed. So does one of its own keys placed
    // elsewhere since it was queued.
    bool changed = target >= 0 && static_cast<NodeIndex>(target) != lease.node;
    for (const auto& k : lease.watched) {
      auto e = server_.directory().find(balancer::directory_key(k));
      if (e && e->node != lease.node) changed = true;
    }
    if (changed) {
      req->reply.clear();
      resp::add_nil_array(req->reply, req->client->resp3());
      complete(req);
      unwatch(req);
      return true;
    }
    target = static_cast<int>(lease.node);
    req->target_node = target;  // new keys go there too
  }
  const bool went = forward_to_common_node(req, target);
  if (went && (req->done || req->fragments_pending > 0)) {  // sent on the lease (or failed)
    if (req->fragments_pending > 0) lease.node_watches = false;  // EXEC unwatches on the node
    unwatch(req);
  }
  return went;
}

bool Router::route_watch(Request* req) {
  ClientConn& client = *req->client;
  Lease& lease = client.lease();
  int target = -1;
  std::string nodes;
  if (!common_node(req, target, nodes)) {
    if (!req->done)
      reply_error(req, "CROSSNODE keys of 'watch' live on different nodes (" + nodes +
                           "); keys that share a hash tag, like {user:42}:a and {user:42}:b, share a node");
    return true;
  }
  if (lease.conn != nullptr && lease.ending) {
    // The last transaction's EXEC is still on its way: the same node's lease serves
    // this watch too (Redis runs the EXEC, then this WATCH); another node's waits
    // for it to end.
    if (target >= 0 && static_cast<NodeIndex>(target) != lease.node) return false;  // Leases pumps
    lease.ending = false;
  }
  if (lease.conn != nullptr) {
    if (target >= 0 && static_cast<NodeIndex>(target) != lease.node) {
      ++server_.stats().crossnode_errors;
      reply_error(req, "CROSSNODE keys of 'watch' live on node " + server_.nodes()[static_cast<NodeIndex>(target)].name() +
                           " and this connection watches keys on node " + server_.nodes()[lease.node].name() +
                           " ('" + lease.watched.front().substr(0, 128) + "'); keys that share a hash tag share a node");
      return true;
    }
  } else {
    // Its earlier commands to that node went on the shared connection: none may be
    // overtaken on the new one.
    if (!client.is_head(req)) {
      client.pump_at_head();
      return false;
    }
    NodeIndex node;
    if (target >= 0) {
      node = static_cast<NodeIndex>(target);
    } else {
      // No key has an entry: the node new keys would go to; the transaction's keys
      // are then placed there.
      auto chosen = balancer::choose_node(server_.nodes(), server_.ledger());
      if (!chosen) {
        reply_error(req, "ERR no data node can take a new key (all are unreachable or full)");
        return true;
      }
      node = *chosen;
    }
    std::string error;
    if (!server_.leases().open(&client, node, error)) {
      reply_error(req, error);
      return true;
    }
  }
  if (lease.lost) {
    reply_error(req, "ERR the connection to node " + server_.nodes()[lease.node].name() +
                         " for this client's WATCH was lost");
    server_.leases().end_when_idle(&client);
    return true;
  }
  if (!lease.conn->connected()) return false;  // lease_ready pumps
  for (const auto& k : req->keys) lease.watched.emplace_back(req->argv[k.argv_index]);
  forward_raw(req, lease.node);
  lease.node_watches = true;
  return true;
}

void Router::unwatch(Request* req) {
  Lease& lease = req->client->lease();
  lease.watched.clear();  // the watch is over, whatever the lease does next
  if (lease.conn != nullptr) server_.leases().end_when_idle(req->client);
}

}  // namespace headroom::proxy
