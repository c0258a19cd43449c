#include "proxy/router.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstring>
#include <random>

#include "balancer/directory.h"
#include "balancer/placement.h"
#include "proxy/client_conn.h"
#include "proxy/local_commands.h"
#include "proxy/merge.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

using resp::Merge;
using resp::Route;
using resp::iequals;

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


// The name Redis uses in arity errors: "get", "object|encoding".
std::string display_name(const resp::CommandInfo& cmd) { return std::string(cmd.name); }

// XREAD and XREADGROUP block only with a BLOCK argument; without one they are plain reads.
bool blocks(const resp::CommandInfo& cmd, std::span<const std::string_view> argv) {
  if (!cmd.has(resp::kBlocking)) return false;
  if (cmd.name == "xread" || cmd.name == "xreadgroup") {
    for (auto a : argv)
      if (iequals(a, "block")) return true;
    return false;
  }
  return true;
}

}  // namespace

Router::Router(Server& server) : server_(server) {}

bool Router::dangerous_allowed(std::string_view name) const {
  for (const auto& a : server_.config().allow_dangerous_commands)
    if (a == name) return true;
  return false;
}

void Router::reply_error(Request* req, std::string_view msg) {
  ++server_.stats().error_replies;
  req->reply.clear();
  resp::add_error(req->reply, msg);
  complete(req);
}

void Router::complete(Request* req) {
  req->done = true;
  req->dispatched = true;
}

void Router::prepare(Request* req) {
  std::span<const std::string_view> argv(req->argv);
  bool unknown_sub = false;
  const resp::CommandInfo* cmd = resp::lookup_command(argv, &unknown_sub);
  if (cmd == nullptr) {
    if (unknown_sub)
      reply_error(req, "ERR unknown subcommand '" + std::string(argv[1].substr(0, 128)) + "'. Try " +
                           resp::to_upper(argv[0]) + " HELP.");
    else
      reply_error(req, unknown_command_error(argv));
    return;
  }
  req->cmd = cmd;
  if (!resp::arity_ok(*cmd, argv.size())) {
    reply_error(req, "ERR wrong number of arguments for '" + display_name(*cmd) + "' command");
    return;
  }
  if (!req->client->authenticated() && cmd->name != "auth" && cmd->name != "hello" && cmd->name != "quit") {
    reply_error(req, "NOAUTH Authentication required.");
    return;
  }
  if (cmd->has(resp::kDangerous) && cmd->route != Route::Refused) {
    // Allowed by their top-level name: "config" allows CONFIG GET and CONFIG SET.
    std::string_view top = cmd->name.substr(0, cmd->name.find('|'));
    if (!dangerous_allowed(top)) {
      reply_error(req, "ERR command '" + std::string(top) +
                           "' is disabled by headroom's configuration (allow_dangerous_commands)");
      return;
    }
    // DEBUG OBJECT/LISTPACK name a key (Redis's key specs do not say so): its node answers.
    if (top == "debug" && argv.size() == 3 && (resp::iequals(argv[1], "object") || resp::iequals(argv[1], "listpack"))) {
      static constexpr resp::CommandInfo kDebugOfKey{"debug", -3, resp::kDangerous, Route::Single, resp::Merge::None, {}};
      req->cmd = &kDebugOfKey;
      req->keys.push_back({2, false});
      return;
    }
  }
  if (cmd->route == Route::Refused) {
    std::string name = cmd->name.find('|') != std::string_view::npos ? resp::to_lower(argv[0]) + " " + resp::to_lower(argv[1])
                                                                      : resp::to_lower(argv[0]);
    reply_error(req, "ERR command '" + name + "' is not supported by headroom");
    return;
  }
  if (blocks(*cmd, argv)) {
    reply_error(req, "ERR blocking command '" + resp::to_lower(argv[0]) + "' is not supported by headroom");
    return;
  }
  if (!cmd->key_specs.empty()) {
    if (!resp::resolve_keys(*cmd, argv, req->keys)) {
      // The arguments cannot hold valid keys (numkeys too large, ...): Redis rejects
      // such a command with its exact error, so any node can answer it.
      req->keys.clear();
      req->keys_invalid = true;
      return;
    }
  }
  // Start placing new keys now, so a pipeline of new keys shares main-server round trips.
  if (cmd->route == Route::Single || cmd->route == Route::Split) {
    for (const auto& k : req->keys) {
      if (!k.may_create) continue;
      std::string_view dk = balancer::directory_key(argv[k.argv_index]);
      if (server_.directory().find(dk)) continue;
      auto node = balancer::choose_node(server_.nodes());
      if (!node) break;  // dispatch reports it
      if (!place(req, dk, *node)) break;
    }
  }
}

bool Router::place(Request* req, std::string_view dk, NodeIndex node) {
  ++req->placements_pending;
  bool sent = server_.main_store().place(dk, node, [this, req](const balancer::PlaceResult& res) {
    placement_done(req, res.error);
  });
  if (!sent) {
    --req->placements_pending;
    if (req->placement_error.empty())
      req->placement_error = "ERR main server " + server_.main_store().config().name + " (" +
                             server_.main_store().config().address.host + ":" +
                             std::to_string(server_.main_store().config().address.port) +
                             ") is unavailable: cannot place new keys";
    return false;
  }
  // Reserve the new key's bytes on the node now, so the next placement sees them
  // even before the write reaches the node; released when the request is freed.
  constexpr uint64_t kPerKeyOverhead = 64;  // what Redis spends on a key beyond its bytes
  uint64_t bytes = req->raw.size() / std::max<size_t>(1, req->keys.size()) + kPerKeyOverhead;
  server_.nodes()[node].reserved_bytes += bytes;
  req->reservations.push_back({node, bytes});
  ++server_.stats().placements;
  return true;
}

void Router::placement_done(Request* req, const std::string& error) {
  --req->placements_pending;
  if (!error.empty()) {
    ++server_.stats().placement_errors;
    if (req->placement_error.empty()) req->placement_error = error;
  }
  if (req->placements_pending > 0) return;
  if (req->client == nullptr) {
    if (req->fragments_pending == 0) server_.free_request(req);
    return;
  }
  req->client->pump();
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
  auto& store = server_.main_store();
  if (store.current()) return true;
  const auto& m = store.config();
  reply_error(req, "ERR main server " + m.name + " (" + m.address.host + ":" + std::to_string(m.address.port) +
                       ") is unavailable: keys this proxy has not cached cannot be looked up");
  return false;
}

bool Router::dispatch(Request* req) {
  if (req->done) return true;
  if (req->placements_pending > 0) return false;
  if (!req->placement_error.empty()) {
    reply_error(req, req->placement_error);
    return true;
  }
  const auto& cmd = *req->cmd;
  if (req->keys_invalid) {  // arguments Redis will reject
    dispatch_any(req);
    return true;
  }
  switch (cmd.route) {
    case Route::Local:
      run_local_command(server_, *req);
      ++server_.stats().local_replies;
      complete(req);
      return true;
    case Route::Single:
      return dispatch_single(req);
    case Route::Split:
      return dispatch_split(req);
    case Route::SameNode:
      return dispatch_same_node(req);
    case Route::FanOut:
      if (cmd.merge == Merge::Scan) dispatch_scan(req);
      else dispatch_fan_out(req);
      return true;
    case Route::AnyNode:
      dispatch_any(req);
      return true;
    case Route::Refused:
      reply_error(req, "ERR command '" + resp::to_lower(req->argv[0]) + "' is not supported by headroom");
      return true;
  }
  return true;
}

Router::Lookup Router::lookup(Request* req, const resp::KeyRef& key, NodeIndex& node) {
  std::string_view dk = balancer::directory_key(req->argv[key.argv_index]);
  if (auto n = server_.directory().find(dk)) {
    node = *n;
    return Lookup::kFound;
  }
  return Lookup::kAbsent;
}

bool Router::dispatch_single(Request* req) {
  if (req->keys.empty()) {
    dispatch_any(req);
    return true;
  }
  const auto& key = req->keys[0];
  NodeIndex node = 0;
  if (lookup(req, key, node) == Lookup::kAbsent) {
    if (key.may_create) {
      auto chosen = balancer::choose_node(server_.nodes());
      if (!chosen) {
        reply_error(req, "ERR no data node can take a new key (all are unreachable or full)");
        return true;
      }
      if (!place(req, balancer::directory_key(req->argv[key.argv_index]), *chosen)) {
        reply_error(req, req->placement_error);
        return true;
      }
      req->take_ownership();
      return false;
    }
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

void Router::dispatch_any(Request* req) {
  NodeIndex node = 0;
  if (!any_node(node)) {
    reply_error(req, "ERR no data node is available");
    return;
  }
  forward_raw(req, node);
}

bool Router::backend_ready(NodeIndex node, std::string& error) {
  if (!server_.node_available(node)) {
    error = server_.backend(node).unavailable_error();
    return false;
  }
  uint32_t limit = server_.config().max_backend_inflight;
  if (limit != 0 && server_.backend(node).inflight() >= limit) {
    // A node that falls this far behind is slow or stuck: refusing more work keeps
    // the proxy's memory bounded and tells clients at once rather than at the timeout.
    error = "ERR node " + server_.nodes()[node].name() + " has " + std::to_string(limit) +
            " requests in flight (max_backend_inflight); try again";
    return false;
  }
  return true;
}

uint32_t Router::add_fragment(Request* req, NodeIndex node) {
  req->fragments.emplace_back();
  req->fragments.back().node = node;
  return static_cast<uint32_t>(req->fragments.size() - 1);
}

void Router::count_write(Request* req, NodeIndex node) {
  if (!req->cmd->has(resp::kWrite)) return;
  auto& n = server_.nodes()[node];
  n.written_total += req->raw.size();
  n.written_since_poll += req->raw.size();
}

void Router::forward_raw(Request* req, NodeIndex node) {
  std::string error;
  if (!backend_ready(node, error)) {
    reply_error(req, error);
    return;
  }
  forget_deleted_keys(req);
  uint32_t f = add_fragment(req, node);
  BackendConn& b = server_.backend(node);
  b.out().append(req->raw);
  ++req->fragments_pending;
  b.sent(req, f);
  count_write(req, node);
  req->dispatched = true;
  ++server_.stats().commands_forwarded;
  ++server_.stats().fragments_sent;
}

// Keys deleted through the proxy leave the directory when the DEL is forwarded, not
// when it is answered: a SET of the same key right behind it in the pipeline then
// places the key afresh instead of landing on an entry that is about to vanish.
void Router::forget_deleted_keys(Request* req) {
  std::string_view name = req->cmd->name;
  if (name != "del" && name != "unlink") return;
  for (const auto& k : req->keys) {
    std::string_view dk = balancer::directory_key(req->argv[k.argv_index]);
    if (balancer::is_tag(dk)) continue;  // a tag's entry serves its other keys too
    if (auto n = server_.directory().find(dk)) server_.main_store().remove(dk, *n);
  }
}

bool Router::dispatch_split(Request* req) {
  const auto& cmd = *req->cmd;
  auto& dir = server_.directory();
  size_t step = cmd.key_specs.empty() ? 1 : static_cast<size_t>(std::max<int16_t>(1, cmd.key_specs[0].keystep));
  size_t groups = req->keys.size();
  if (groups == 0) {
    dispatch_any(req);
    return true;
  }

  // Place the new keys first (MSET); the request waits for all of them.
  bool waiting = false;
  for (const auto& k : req->keys) {
    if (!k.may_create) continue;
    std::string_view dk = balancer::directory_key(req->argv[k.argv_index]);
    if (dir.find(dk)) continue;
    auto chosen = balancer::choose_node(server_.nodes());
    if (!chosen) {
      reply_error(req, "ERR no data node can take a new key (all are unreachable or full)");
      return true;
    }
    if (!place(req, dk, *chosen)) {
      reply_error(req, req->placement_error);
      return true;
    }
    waiting = true;
  }
  if (waiting) {
    req->take_ownership();
    return false;
  }

  // Group the keys by node; keys no proxy has placed go to one node of our choice.
  node_fragment_.assign(server_.nodes().size(), -1);
  int absent_node = -1;
  for (size_t g = 0; g < groups; ++g) {
    NodeIndex node = 0;
    if (lookup(req, req->keys[g], node) == Lookup::kAbsent) {
      if (absent_node < 0) {
        if (!absence_known(req)) {
          req->fragments.clear();
          return true;
        }
        NodeIndex any = 0;
        if (!any_node(any)) {
          reply_error(req, "ERR no data node is available");
          return true;
        }
        absent_node = any;
      }
      node = static_cast<NodeIndex>(absent_node);
    }
    if (node_fragment_[node] < 0) node_fragment_[node] = static_cast<int>(add_fragment(req, node));
    req->fragments[static_cast<size_t>(node_fragment_[node])].groups.push_back(static_cast<uint32_t>(g));
  }
  for (const auto& f : req->fragments) {
    std::string error;
    if (!backend_ready(f.node, error)) {
      req->fragments.clear();
      reply_error(req, error);
      return true;
    }
  }
  if (req->fragments.size() == 1) {  // every key on one node: forward as is
    NodeIndex node = req->fragments[0].node;
    req->fragments.clear();
    forward_raw(req, node);
    return true;
  }
  forget_deleted_keys(req);
  // One fragment per node: the command name, then each of its key groups' arguments.
  req->fragments_pending = static_cast<uint32_t>(req->fragments.size());
  for (uint32_t f = 0; f < req->fragments.size(); ++f) {
    auto& frag = req->fragments[f];
    BackendConn& b = server_.backend(frag.node);
    resp::Buffer& out = b.out();
    resp::add_array_header(out, static_cast<int64_t>(1 + frag.groups.size() * step));
    resp::add_bulk(out, req->argv[0]);
    for (uint32_t g : frag.groups) {
      uint32_t at = req->keys[g].argv_index;
      for (size_t s = 0; s < step; ++s) resp::add_bulk(out, req->argv[at + s]);
    }
    b.sent(req, f);
    if (cmd.has(resp::kWrite)) {
      auto& n = server_.nodes()[frag.node];
      n.written_total += req->raw.size() / req->fragments.size();
      n.written_since_poll += req->raw.size() / req->fragments.size();
    }
    ++server_.stats().fragments_sent;
  }
  req->dispatched = true;
  ++server_.stats().commands_forwarded;
  return true;
}

bool Router::dispatch_same_node(Request* req) {
  auto& dir = server_.directory();
  // Where do the keys that exist live?
  int target = -1;
  std::string nodes_seen;
  bool cross = false;
  bool needs_placement = false;
  for (const auto& k : req->keys) {
    std::string_view dk = balancer::directory_key(req->argv[k.argv_index]);
    if (auto n = dir.find(dk)) {
      if (target < 0) {
        target = *n;
        nodes_seen = server_.nodes()[*n].name();
      } else if (target != *n) {
        cross = true;
        nodes_seen += ", " + server_.nodes()[*n].name();
      }
    } else if (k.may_create) {
      needs_placement = true;
    } else if (!absence_known(req)) {
      return true;
    }
  }
  if (cross) {
    ++server_.stats().crossnode_errors;
    reply_error(req, "CROSSNODE keys of '" + resp::to_lower(req->argv[0]) + "' live on different nodes (" + nodes_seen +
                         "); keys that share a hash tag, like {user:42}:a and {user:42}:b, share a node");
    return true;
  }
  if (needs_placement) {
    if (target < 0) {
      if (req->target_node >= 0) {
        target = req->target_node;
      } else {
        auto chosen = balancer::choose_node(server_.nodes());
        if (!chosen) {
          reply_error(req, "ERR no data node can take a new key (all are unreachable or full)");
          return true;
        }
        target = *chosen;
      }
    }
    req->target_node = target;
    for (const auto& k : req->keys) {
      if (!k.may_create) continue;
      std::string_view dk = balancer::directory_key(req->argv[k.argv_index]);
      if (dir.find(dk)) continue;
      if (!place(req, dk, static_cast<NodeIndex>(target))) {
        reply_error(req, req->placement_error);
        return true;
      }
    }
    req->take_ownership();
    return false;  // dispatch again once placed; a key placed elsewhere meanwhile gives CROSSNODE
  }
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

void Router::dispatch_fan_out(Request* req) {
  size_t n = server_.nodes().size();
  for (NodeIndex i = 0; i < n; ++i) {
    std::string error;
    if (!backend_ready(i, error)) {
      reply_error(req, error);
      return;
    }
  }
  bool flush = req->cmd->name == "flushall" || req->cmd->name == "flushdb";
  for (NodeIndex i = 0; i < n; ++i) add_fragment(req, i);
  req->fragments_pending = static_cast<uint32_t>(n + (flush ? 1 : 0));
  if (flush) {
    // The directory is flushed with the nodes: one more fragment, answered by the main store.
    uint32_t f = add_fragment(req, 0);
    server_.main_store().flush([this, req, f](std::string_view error) {
      resp::Buffer r;
      if (error.empty()) resp::add_simple(r, "OK");
      else resp::add_error(r, error);
      on_fragment_reply(req, f, r.view());
    });
  }
  for (NodeIndex i = 0; i < n; ++i) {
    BackendConn& b = server_.backend(i);
    b.out().append(req->raw);
    b.sent(req, i);
    ++server_.stats().fragments_sent;
  }
  req->dispatched = true;
  ++server_.stats().commands_forwarded;
}

// SCAN's cursor names the node: client cursor = node cursor << 8 | node index. A full
// scan walks node 0 to the end, then node 1, ... so it visits every data node once.
void Router::dispatch_scan(Request* req) {
  uint64_t cursor = 0;
  std::string_view c = req->argv[1];
  auto r = std::from_chars(c.data(), c.data() + c.size(), cursor);
  size_t nodes = server_.nodes().size();
  if (r.ec != std::errc() || r.ptr != c.data() + c.size()) {
    reply_error(req, "ERR invalid cursor");
    return;
  }
  NodeIndex node = static_cast<NodeIndex>(cursor & 0xff);
  uint64_t node_cursor = cursor >> 8;
  if (node >= nodes) {
    reply_error(req, "ERR invalid cursor");
    return;
  }
  std::string error;
  if (!backend_ready(node, error)) {
    reply_error(req, error);
    return;
  }
  uint32_t f = add_fragment(req, node);
  BackendConn& b = server_.backend(node);
  char num[24];
  auto end = std::to_chars(num, num + sizeof num, node_cursor).ptr;
  std::vector<std::string_view> argv(req->argv);
  argv[1] = std::string_view(num, static_cast<size_t>(end - num));
  resp::add_command(b.out(), argv);
  ++req->fragments_pending;
  b.sent(req, f);
  req->dispatched = true;
  ++server_.stats().commands_forwarded;
  ++server_.stats().fragments_sent;
}

void Router::on_fragment_reply(Request* req, uint32_t f, std::string_view reply) {
  --req->fragments_pending;
  if (req->client == nullptr) {  // orphaned: the client has gone
    if (req->fragments_pending == 0 && req->placements_pending == 0) server_.free_request(req);
    return;
  }
  bool pass_through = req->fragments.size() == 1 && req->cmd->merge != Merge::Scan;
  if (pass_through) {
    if (req->client->deliver_head(req, reply)) return;  // the common case: no copy
    req->reply.append(reply);
    complete(req);
    req->client->request_done();
    return;
  }
  Fragment& frag = req->fragments[f];
  frag.reply_offset = static_cast<uint32_t>(req->fragment_replies.size());
  frag.reply_length = static_cast<uint32_t>(reply.size());
  frag.done = true;
  req->fragment_replies.append(reply);
  if (req->fragments_pending == 0) finish(req);
}

void Router::finish(Request* req) {
  merge_fragments(server_, *req);
  complete(req);
  req->client->request_done();
}

}  // namespace headroom::proxy
