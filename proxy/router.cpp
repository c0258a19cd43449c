#include "proxy/router.h"

#include <spdlog/spdlog.h>

#include "balancer/directory.h"
#include "balancer/placement.h"
#include "proxy/client_conn.h"
#include "proxy/config_guard.h"
#include "proxy/local_commands.h"
#include "proxy/merge.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

using resp::Merge;
using resp::Route;

namespace {

// Redis's wording for an unknown command: the name and the first arguments, quoted.
std::string unknown_command_error(std::span<const std::string_view> argv) {
  std::string args;
  for (size_t i = 1; i < argv.size() && args.size() < 128; ++i) {
    size_t room = 128 - args.size();
    args += "'";
    args += argv[i].substr(0, room);
    args += "' ";
  }
  std::string msg = "ERR unknown command '" + std::string(argv[0].substr(0, 128)) +
                    "', with args beginning with: " + args;
  for (char& c : msg)
    if (c == '\r' || c == '\n') c = ' ';
  return msg;
}

}  // namespace

std::string typed_name(const resp::CommandInfo& cmd, std::span<const std::string_view> argv) {
  bool sub = cmd.name.find('|') != std::string_view::npos && argv.size() > 1;
  return sub ? resp::to_lower(argv[0]) + " " + resp::to_lower(argv[1]) : resp::to_lower(argv[0]);
}

Router::Router(Server& server) : server_(server) { config_changed(); }

void Router::config_changed() {
  // allow_dangerous_commands names top-level commands ("config" allows CONFIG GET and
  // CONFIG SET): resolved to rows once, so a request's check is one lookup.
  auto rows = resp::all_commands();
  allowed_dangerous_.assign(rows.size(), false);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string_view top = rows[i].name.substr(0, rows[i].name.find('|'));
    for (const auto& a : server_.config().allow_dangerous_commands)
      if (a == top) allowed_dangerous_[i] = true;
  }
}

void Router::reply_error(Request* req, std::string_view msg) {
  ++server_.stats().error_replies;
  server_.count_error(msg);
  req->failed = true;
  req->reply.clear();
  resp::add_error(req->reply, msg);
  complete(req);
}

std::string Router::main_unavailable(std::string_view what) const {
  const auto& m = server_.config().main;
  return "ERR main server " + m.name + " (" + conf::to_string(m.address) + ") is unavailable: " + std::string(what);
}

void Router::reject(Request* req, std::string_view msg) {
  // As Redis: a command refused while a transaction is queued discards the transaction.
  Transaction& tx = req->client->transaction();
  if (tx.open) tx.failed = true;
  reply_error(req, msg);
}

void Router::prepare(Request* req) {
  std::span<const std::string_view> argv(req->argv);
  bool unknown_sub = false;
  const resp::CommandInfo* cmd = resp::lookup_command(argv, &unknown_sub);
  req->client->set_last_command(cmd);  // CLIENT LIST's cmd=, as Redis's lastcmd (none for an unknown one)
  if (cmd == nullptr) {
    if (unknown_sub)
      reject(req, "ERR unknown subcommand '" + std::string(argv[1].substr(0, 128)) + "'. Try " +
                      resp::to_upper(argv[0]) + " HELP.");
    else
      reject(req, unknown_command_error(argv));
    return;
  }
  req->cmd = cmd;
  if (!resp::arity_ok(*cmd, argv.size())) {
    reject(req, "ERR wrong number of arguments for '" + std::string(cmd->name) + "' command");
    return;
  }
  if (!req->client->authenticated() && !cmd->has(resp::kNoAuth)) {
    reject(req, "NOAUTH Authentication required.");
    return;
  }
  if (cmd->route == Route::Refused) {
    reject(req, "ERR command '" + typed_name(*cmd, argv) + "' is not supported by headroom");
    return;
  }
  if (cmd->has(resp::kDangerous) && !allowed_dangerous_[static_cast<size_t>(cmd - resp::all_commands().data())]) {
    reject(req, "ERR command '" + std::string(cmd->name.substr(0, cmd->name.find('|'))) +
                    "' is disabled by headroom's configuration (allow_dangerous_commands)");
    return;
  }
  if (cmd->has(resp::kSetsConfig)) {
    if (std::string_view owned = owned_config_parameter(argv); !owned.empty()) {
      reject(req, "ERR CONFIG SET of '" + std::string(owned.substr(0, 64)) +
                      "' is refused by headroom, which owns it: change it on the nodes directly and in "
                      "headroom's config");
      return;
    }
  }
  if (cmd->route == Route::Transaction) {
    transaction_command(req);
    return;
  }
  if (req->client->transaction().open && cmd->local != resp::LocalCommand::Quit) {
    queue_in_transaction(req);  // inside MULTI a blocking command does not block: it is queued
    return;
  }
  if (!cmd->key_specs.empty() && !resp::resolve_keys(*cmd, argv, req->keys)) {
    // The arguments cannot hold valid keys (numkeys too large, ...): Redis rejects
    // such a command with its exact error, so any node can answer it.
    req->keys.clear();
    req->keys_invalid = true;
    return;
  }
  if (resp::blocks(*cmd, argv)) {
    // A blocking read of a key no node has yet places it, so that the producer's
    // later push goes to the node where the consumer waits (route_blocking.cpp).
    req->blocking = true;
    for (auto& k : req->keys) k.may_create = true;
  }
  // Start placing new keys now, so a pipeline of new keys shares main-server round trips.
  for (const auto& k : req->keys) {
    if (k.may_create) {
      place_new_keys(req);
      return;
    }
  }
}

bool Router::dispatch(Request* req) {
  // As Redis: nothing of a client's runs while its blocking command waits, nor before
  // its (un)subscribe is confirmed (which changes what it may run).
  if (req->client->dispatch_held()) return false;
  if (req->cmd != nullptr && req->client->in_subscribed_mode() && !req->done && req->cmd->route != Route::PubSub &&
      req->cmd->local != resp::LocalCommand::Ping && req->cmd->local != resp::LocalCommand::Quit) {
    reply_error(req, "ERR Can't execute '" + std::string(req->cmd->name) +
                         "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    return true;
  }
  // CLIENT PAUSE: what it holds waits (its client is pumped when the pause ends).
  if (server_.paused()) [[unlikely]] {
    if (server_.held_by_pause(req)) return false;
  }
  if (req->done) {
    if (req->unwatches) unwatch(req);  // DISCARD, EXEC answered at once: in order, the watch ends
    return true;
  }
  if (req->placements_pending > 0) return false;
  if (!req->error.empty()) {
    reply_error(req, req->error);
    return true;
  }
  if (req->keys_invalid) {  // arguments Redis will reject
    route_any(req);
    return true;
  }
  // Keys being moved (rare): the request may wait, or (past its bound) be answered.
  if (server_.directory().moving() != 0 && !req->keys.empty()) {
    if (!await_moves(req)) return false;
    if (req->done) return true;
  }
  switch (req->cmd->route) {
    case Route::Local:
      // HELLO may switch the client's protocol, and so the nodes' connections its
      // commands take: it waits until every earlier command is answered, so none of
      // them can be overtaken on the other connection.
      if (req->cmd->local == resp::LocalCommand::Hello && !req->client->is_head(req)) {
        req->client->pump_at_head();
        return false;
      }
      run_local_command(server_, *req);
      ++server_.stats().local_replies;
      complete(req);
      return true;
    case Route::Single:
      return route_single(req);
    case Route::Split:
      return route_split(req);
    case Route::SameNode:
      return route_same_node(req);
    case Route::FanOut:
      if (req->cmd->merge != Merge::Scan) return route_fan_out(req);
      route_scan(req);
      return true;
    case Route::AnyNode:
      route_any(req);
      return true;
    case Route::Transaction:
      return route_transaction(req);  // EXEC's block (MULTI and DISCARD are answered in prepare)
    case Route::PubSub:
      return route_pubsub(req);
    case Route::Admin:
      return route_admin(req);
    case Route::Refused:
      break;  // answered in prepare
  }
  return true;
}

void Router::look_up_keys(Request* req) {
  auto& dir = server_.directory();
  if (req->lookup_version == dir.version()) return;
  req->lookup_version = dir.version();
  req->key_nodes.resize(req->keys.size());
  req->key_retiring.resize(req->keys.size());
  req->any_moving = false;
  for (size_t i = 0; i < req->keys.size(); ++i) {
    auto e = dir.find(balancer::directory_key(req->argv[req->keys[i].argv_index]));
    req->key_nodes[i] = e ? static_cast<int32_t>(e->node) : -1;
    req->key_retiring[i] = e && e->retiring;
    req->any_moving |= e && e->moving;
  }
}

// docs/moves.md: a command for a key whose entry is moving waits until the move has
// committed (or was undone), then goes to the node the entry names by then. The mover
// gives a move up well within request_ms; the bound here is the backstop.
bool Router::await_moves(Request* req) {
  look_up_keys(req);
  if (!req->any_moving) return true;
  const uint64_t now = uv_now(server_.loop());
  const uint64_t limit = server_.config().request_timeout_ms;
  if (req->moving_since_ms == 0) {
    req->moving_since_ms = now;
  } else if (limit != 0 && now - req->moving_since_ms >= limit) {
    reply_error(req, "ERR a key of this command is being moved between nodes and the move did not finish within "
                     "request_ms; try again");
    return true;
  }
  server_.park_for_move(req->client);
  return false;
}

bool Router::place_new_keys(Request* req) {
  if (req->placements_pending > 0) return false;
  look_up_keys(req);
  const bool same_node = req->cmd->route == Route::SameNode || req->cmd->route == Route::Transaction;
  int target = -1;
  if (same_node) {
    // New keys join the keys that exist; keys on several nodes are the route's
    // CROSSNODE to report, so nothing is placed for them.
    for (int32_t n : req->key_nodes) {
      if (n < 0) continue;
      if (target >= 0 && target != n) return true;
      target = n;
    }
    if (target < 0) target = req->target_node;  // chosen by an earlier call
  }
  bool waiting = false;
  for (size_t i = 0; i < req->keys.size(); ++i) {
    if (server_.node_list_differs() && req->keys[i].may_create &&
        (req->key_nodes[i] < 0 || req->key_retiring[i])) {
      reply_error(req, "ERR this proxy's node list differs from the one another proxy recorded on the main server: "
                       "it places no new key until its config is reloaded to match (kill -HUP, or HEADROOM RELOAD)");
      return false;
    }
    // A retiring entry may be removed once its key is absent: a write that may create
    // the key must make it live again first (on its node), as a placement does.
    if (!req->keys[i].may_create || (req->key_nodes[i] >= 0 && !req->key_retiring[i])) continue;
    NodeIndex node;
    if (req->key_nodes[i] >= 0) {
      node = static_cast<NodeIndex>(req->key_nodes[i]);  // revived where it is
    } else if (same_node && target >= 0) {
      node = static_cast<NodeIndex>(target);
    } else {
      auto chosen = balancer::choose_node(server_.nodes(), server_.ledger());
      if (!chosen) {
        reply_error(req, "ERR no data node can take a new key (all are unreachable or full)");
        return false;
      }
      node = *chosen;
      if (same_node) target = node;
    }
    std::string_view dk = balancer::directory_key(req->argv[req->keys[i].argv_index]);
    // The new key's bytes count on its node from now: the next placement sees them
    // even before the write reaches the node.
    const balancer::Reservation reserved = server_.ledger().reserve(node, req->raw.size() / req->keys.size());
    ++req->placements_pending;
    if (!server_.main_store().place(dk, node, reserved.bytes,
                                    [this, req](const balancer::PlaceResult& r) { on_placed(req, r); })) {
      --req->placements_pending;
      server_.ledger().write_done(reserved, false);
      reply_error(req, main_unavailable("cannot place new keys"));
      return false;
    }
    req->placed.push_back({reserved, static_cast<uint32_t>(i), false, uv_hrtime()});
    ++server_.stats().placements;
    waiting = true;
  }
  if (same_node) req->target_node = target;
  return !waiting;
}

// Placements are answered in the order they were asked for (MainStore::place), so
// the n-th answer is for req->placed[n].
void Router::on_placed(Request* req, const balancer::PlaceResult& result) {
  size_t answered = req->placed.size() - req->placements_pending;
  Request::Placed& p = req->placed[answered];
  --req->placements_pending;
  server_.placement_latency().add(uv_hrtime() - p.asked_ns);
  if (result.node != static_cast<int>(p.reservation.node)) {
    // Not placed where reserved: an error, or another proxy placed the key first (it
    // is written there, as an overwrite). Either way these bytes do not land here.
    p.ended = true;
    server_.ledger().write_done(p.reservation, false);
  }
  if (!result.error.empty()) {
    ++server_.stats().placement_errors;
    if (req->error.empty()) req->error = result.error;
  }
  if (req->owner_done) {  // refused meanwhile, or its client has gone
    server_.requests().settle(req);
    return;
  }
  if (req->placements_pending == 0) req->client->pump();  // may free req
}

bool Router::any_node(NodeIndex& node) {
  size_t n = server_.nodes().size();
  for (size_t i = 0; i < n; ++i) {
    NodeIndex cand = static_cast<NodeIndex>((any_rr_ + i) % n);
    if (server_.node_available(cand)) {
      any_rr_ = static_cast<uint32_t>(cand + 1);
      node = cand;
      return true;
    }
  }
  return false;
}

bool Router::absence_known(Request* req) {
  if (server_.main_store().current()) return true;
  reply_error(req, main_unavailable("keys this proxy has not cached cannot be looked up"));
  return false;
}

BackendConn* Router::ready_backend(Request* req, NodeIndex node) {
  const Lease& lease = req->client->lease();
  BackendConn& b = lease.conn != nullptr && lease.node == node
                       ? *lease.conn
                       : server_.backends(node, req->client->resp3()).for_client(req->client->id());
  if (!b.connected()) {
    reply_error(req, b.unavailable_error());
    return nullptr;
  }
  uint32_t limit = server_.config().max_backend_inflight;
  if (limit != 0 && b.inflight() >= limit) {
    // A node that falls this far behind is slow or stuck: refusing more work keeps
    // the proxy's memory bounded and tells clients at once rather than at the timeout.
    reply_error(req, "ERR node " + server_.nodes()[node].name() + " has " + std::to_string(limit) +
                         " requests in flight (max_backend_inflight); try again");
    return nullptr;
  }
  return &b;
}

uint32_t Router::add_fragment(Request* req, NodeIndex node) {
  req->fragments.emplace_back();
  req->fragments.back().node = node;
  return static_cast<uint32_t>(req->fragments.size() - 1);
}

void Router::sent(Request* req, BackendConn& b, uint32_t fragment) {
  ++req->fragments_pending;
  b.sent(req, fragment, req->skip_replies);
  ++server_.stats().fragments_sent;
}

void Router::forward_raw(Request* req, NodeIndex node) {
  BackendConn* b = ready_backend(req, node);
  if (b == nullptr) return;
  uint32_t f = add_fragment(req, node);
  b->out().append(req->raw);
  sent(req, *b, f);
  ++server_.stats().commands_forwarded;
}

void Router::account(Request* req, const Fragment& f, std::string_view reply) {
  const bool error = !reply.empty() && reply[0] == '-';
  bool placed_here = false;
  for (auto& p : req->placed) {
    if (p.ended || p.reservation.node != f.node) continue;
    server_.ledger().write_done(p.reservation, !error);
    p.ended = true;
    placed_here = true;
    check_created(req, p, reply, error);
  }
  // A write to a key that exists counts what its command and reply say it added
  // (an overwrite or a DEL adds nothing); the next poll corrects the rest.
  if (!placed_here && !error && req->cmd != nullptr && req->cmd->growth.kind != resp::Growth::Kind::None)
    server_.ledger().grown(f.node, resp::growth_bytes(*req->cmd, req->argv, reply));
}

// A key was placed for this write, and the write is answered: if the write did not
// create the key (an error, SET ... XX of a missing key, a script that only read),
// its entry retires, so the directory holds no entry for a key no node has. The
// common answers say so at once; the others are checked with EXISTS on the node,
// which runs after the write.
void Router::check_created(Request* req, const Request::Placed& p, std::string_view reply, bool error) {
  std::string_view dk = balancer::directory_key(req->argv[req->keys[p.key].argv_index]);
  if (balancer::is_tag(dk)) return;  // a tag's entry serves other keys too: the sweep decides
  if (req->blocking) return;  // placed to be waited on: held while waited on, then the sweep decides
  const NodeIndex node = p.reservation.node;
  if (!req->cmd->has(resp::kRunsScript)) {  // a script's error may follow its writes
    if (error) {
      server_.main_store().retire(dk, node);
      return;
    }
    if (reply == "+OK\r\n" || (reply[0] == ':' && reply != ":0\r\n")) return;  // stored
  }
  BackendConn& b = server_.backends(node).for_client(0);
  if (!b.connected()) return;  // the sweep will find it
  b.probe_exists(dk, [this, key = std::string(dk), node](bool exists) {
    if (!exists) server_.main_store().retire(key, node);
  });
}

void Router::on_fragment_reply(Request* req, uint32_t f, std::string_view reply) {
  account(req, req->fragments[f], reply);
  --req->fragments_pending;
  if (req->blocking) {
    blocking_answered(req, reply);  // the client may go on (it is pumped), or gives back what it missed
    if (req->owner_done) {
      server_.requests().settle(req);
      return;
    }
    ClientConn* client = req->client;
    if (client->closed()) return;  // it goes at the end of this turn, with its queue
    if (!client->deliver_head(req, reply)) {
      req->reply.append(reply);
      complete(req);
      client->request_done();
    }
    client->pump();
    return;
  }
  if (req->owner_done) {  // orphaned: the client has gone
    server_.requests().settle(req);
    return;
  }
  if (req->fragments.size() == 1 && req->cmd->merge != Merge::Scan) {
    req->failed = reply[0] == '-';
    if (req->failed) [[unlikely]] server_.count_error(reply.substr(1));
    if (req->client->deliver_head(req, reply)) return;  // the common case: no copy
    req->reply.append(reply);
    complete(req);
    req->client->request_done();
    return;
  }
  Fragment& frag = req->fragments[f];
  frag.reply_offset = static_cast<uint32_t>(req->fragment_replies.size());
  frag.reply_length = static_cast<uint32_t>(reply.size());
  req->fragment_replies.append(reply);
  if (req->fragments_pending == 0) finish(req);
}

// CONFIG SET appendonly starts an AOF rewrite on every node: until each node's next
// poll has seen it, INFO persistence says one is scheduled (a client waiting for the
// rewrite, as Redis's own tests do before DEBUG LOADAOF, must not find it done).
void Router::persistence_may_change(const Request& req) {
  for (size_t i = 2; i < req.argv.size(); i += 2) {
    if (!resp::iequals(req.argv[i], "appendonly")) continue;
    for (auto& n : server_.nodes().all()) ++n.persistence_changes;
    return;
  }
}

void Router::finish(Request* req) {
  if (req->cmd->has(resp::kFlushes)) mark_flushed(req);
  merge_fragments(*req, server_.nodes().size());
  if (req->cmd->has(resp::kResetsStats) && req->reply.view() == "+OK\r\n") server_.reset_stats();
  if (req->cmd->has(resp::kSetsConfig) && req->reply.view() == "+OK\r\n") persistence_may_change(*req);
  complete(req);
  req->client->request_done();
}

}  // namespace headroom::proxy
