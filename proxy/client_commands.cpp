#include "proxy/client_commands.h"

#include <uv.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "balancer/control_conn.h"
#include "proxy/backend_conn.h"
#include "proxy/client_conn.h"
#include "proxy/request.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {

using resp::iequals;
using resp::LocalCommand;

// An integer as Redis's string2ll reads one: an optional '-', no leading zeros, no
// spaces or '+', within 64 bits.
bool redis_integer(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  const bool negative = s[0] == '-';
  std::string_view digits = negative ? s.substr(1) : s;
  if (digits.empty() || (digits[0] == '0' && (digits.size() > 1 || negative))) return false;
  uint64_t v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    const uint64_t d = static_cast<uint64_t>(ch - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative ? v > kMax + 1 : v > kMax) return false;
  out = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return true;
}

void syntax_error(Request& req) { resp::add_error(req.reply, "ERR syntax error"); }

// Redis's answer for a subcommand it knows given a number of arguments it does not
// take (CLIENT PAUSE 10 WRITE x).
void subcommand_syntax_error(Request& req) {
  resp::add_error(req.reply, "ERR unknown subcommand or wrong number of arguments for '" +
                                 std::string(req.argv[1].substr(0, 128)) + "'. Try " + resp::to_upper(req.argv[0]) +
                                 " HELP.");
}

// Redis's client types, by the names its TYPE options take. headroom's clients are
// normal or pubsub (a monitor is normal, as in Redis); none is a master or a replica.
enum class ClientType { Normal, Replica, Pubsub, Master };

std::optional<ClientType> type_named(std::string_view name) {
  if (iequals(name, "normal")) return ClientType::Normal;
  if (iequals(name, "slave") || iequals(name, "replica")) return ClientType::Replica;
  if (iequals(name, "pubsub")) return ClientType::Pubsub;
  if (iequals(name, "master")) return ClientType::Master;
  return std::nullopt;
}

ClientType type_of(const ClientConn& c) { return c.subscribed() ? ClientType::Pubsub : ClientType::Normal; }

void unknown_type(Request& req, std::string_view name) {
  resp::add_error(req.reply, "ERR Unknown client type '" + std::string(name) + "'");
}

void field(std::string& out, std::string_view name, std::string_view value) {
  if (!out.empty() && out.back() != '\n') out += ' ';
  out += name;
  out += '=';
  out += value;
}

void field(std::string& out, std::string_view name, int64_t value) { field(out, name, std::to_string(value)); }

void field(std::string& out, std::string_view name, size_t value) { field(out, name, std::to_string(value)); }

// One line of CLIENT LIST, in Redis 7.0's fields and order. What headroom does not
// have is given as a Redis client without it shows it: db=0, user=default (the only
// user), redir=-1 (no tracking), oll=0 (one output buffer, no reply list), rbp the
// buffer's size (no peak is kept).
void append_line(std::string& out, Server& server, const ClientConn& c, uint64_t now_ms) {
  std::string flags;
  if (server.is_monitor(&c)) flags += 'O';
  if (c.subscribed()) flags += 'P';
  if (c.transaction().open) flags += 'x';
  if (c.lease().blocking || c.pause_held()) flags += 'b';
  if (c.closing()) flags += 'c';
  if (c.no_evict()) flags += 'e';
  if (flags.empty()) flags = "N";
  std::string events;
  if (c.reading()) events += 'r';
  const ClientConn::Footprint f = c.footprint();
  if (f.unsent != 0) events += 'w';
  const Transaction& tx = c.transaction();
  const resp::CommandInfo* cmd = c.last_command();
  const size_t multi_mem = tx.queued.size();
  const size_t total = sizeof(ClientConn) + f.query + f.query_free + f.reply_buffer + f.unsent + tx.queued.capacity();

  field(out, "id", static_cast<int64_t>(c.id()));
  field(out, "addr", c.peer());
  field(out, "laddr", c.local_address());
  field(out, "fd", static_cast<int64_t>(c.fd()));
  field(out, "name", c.name());
  field(out, "age", static_cast<int64_t>((now_ms - std::min(now_ms, c.connected_ms())) / 1000));
  field(out, "idle", static_cast<int64_t>((now_ms - std::min(now_ms, c.last_read_ms())) / 1000));
  field(out, "flags", flags);
  field(out, "db", int64_t{0});
  field(out, "sub", c.subscriptions(0));
  field(out, "psub", c.subscriptions(1));
  field(out, "ssub", c.subscriptions(2));
  field(out, "multi", tx.open ? static_cast<int64_t>(tx.commands) : int64_t{-1});
  field(out, "qbuf", f.query);
  field(out, "qbuf-free", f.query_free);
  field(out, "argv-mem", f.argv);
  field(out, "multi-mem", multi_mem);
  field(out, "rbs", f.reply_buffer);
  field(out, "rbp", f.reply_buffer);
  field(out, "obl", f.reply_pending);
  field(out, "oll", size_t{0});
  field(out, "omem", f.unsent);
  field(out, "tot-mem", total);
  field(out, "events", events);
  field(out, "cmd", cmd != nullptr ? cmd->name : std::string_view("NULL"));
  field(out, "user", "default");
  field(out, "redir", int64_t{-1});
  field(out, "resp", int64_t{c.resp3() ? 3 : 2});
  out += '\n';
}

// As Redis: a verbatim string in RESP3, a bulk string in RESP2.
void reply_text(Request& req, std::string_view text) {
  if (req.client->resp3()) resp::add_verbatim(req.reply, "txt", text);
  else resp::add_bulk(req.reply, text);
}

// The open clients in connection order (Redis lists them so).
std::vector<ClientConn*> clients_in_order(Server& server) {
  std::vector<ClientConn*> all;
  all.reserve(server.clients().size());
  for (ClientConn* c : server.clients())
    if (!c->closed()) all.push_back(c);
  std::sort(all.begin(), all.end(), [](const ClientConn* a, const ClientConn* b) { return a->id() < b->id(); });
  return all;
}

// CLIENT LIST [TYPE type | ID id ...]
void client_list(Server& server, Request& req) {
  auto& argv = req.argv;
  const uint64_t now = uv_now(server.loop());
  std::string text;
  if (argv.size() == 4 && iequals(argv[2], "type")) {
    auto type = type_named(argv[3]);
    if (!type) {
      unknown_type(req, argv[3]);
      return;
    }
    for (ClientConn* c : clients_in_order(server))
      if (type_of(*c) == *type) append_line(text, server, *c, now);
  } else if (argv.size() > 3 && iequals(argv[2], "id")) {
    std::vector<uint64_t> ids;
    for (size_t i = 3; i < argv.size(); ++i) {
      int64_t id = 0;
      if (!redis_integer(argv[i], id)) {
        resp::add_error(req.reply, "ERR Invalid client ID");
        return;
      }
      ids.push_back(static_cast<uint64_t>(id));
    }
    for (uint64_t id : ids)  // in the order named, as Redis
      if (ClientConn* c = server.client_by_id(id)) append_line(text, server, *c, now);
  } else if (argv.size() != 2) {
    syntax_error(req);
    return;
  } else {
    for (ClientConn* c : clients_in_order(server)) append_line(text, server, *c, now);
  }
  reply_text(req, text);
}

// CLIENT KILL <ip:port> | CLIENT KILL [ID id] [TYPE type] [USER user] [ADDR ip:port]
// [LADDR ip:port] [SKIPME yes|no]: the clients that match every option given are
// closed now; the caller itself, if it matches, once its reply is written.
void client_kill(Server& server, Request& req) {
  auto& argv = req.argv;
  std::optional<std::string_view> addr, laddr;
  std::optional<ClientType> type;
  uint64_t id = 0;
  bool skipme = true;
  const bool old_form = argv.size() == 3;
  if (old_form) {
    addr = argv[2];
    skipme = false;  // as Redis: the old form may kill the caller
  } else {
    for (size_t i = 2; i < argv.size(); i += 2) {
      const bool more = i + 1 < argv.size();
      std::string_view opt = argv[i];
      if (iequals(opt, "id") && more) {
        int64_t v = 0;
        if (!redis_integer(argv[i + 1], v) || v < 1) {
          resp::add_error(req.reply, "ERR client-id should be greater than 0");
          return;
        }
        id = static_cast<uint64_t>(v);
      } else if (iequals(opt, "type") && more) {
        type = type_named(argv[i + 1]);
        if (!type) {
          unknown_type(req, argv[i + 1]);
          return;
        }
      } else if (iequals(opt, "addr") && more) {
        addr = argv[i + 1];
      } else if (iequals(opt, "laddr") && more) {
        laddr = argv[i + 1];
      } else if (iequals(opt, "user") && more) {
        if (argv[i + 1] != "default") {  // every client is "default", the only user (AUTH)
          resp::add_error(req.reply, "ERR No such user '" + std::string(argv[i + 1]) + "'");
          return;
        }
      } else if (iequals(opt, "skipme") && more) {
        if (iequals(argv[i + 1], "yes")) skipme = true;
        else if (iequals(argv[i + 1], "no")) skipme = false;
        else return syntax_error(req);
      } else {
        return syntax_error(req);
      }
    }
  }
  ClientConn* self = req.client;
  std::vector<ClientConn*> matched;
  for (ClientConn* c : clients_in_order(server)) {
    if (addr && c->peer() != *addr) continue;
    if (laddr && c->local_address() != *laddr) continue;
    if (type && type_of(*c) != *type) continue;
    if (id != 0 && c->id() != id) continue;
    if (c == self && skipme) continue;
    matched.push_back(c);
  }
  bool close_self = false;
  for (ClientConn* c : matched) {
    if (c == self) {
      close_self = true;
      continue;
    }
    spdlog::debug("client {} ({}): killed by client {} (CLIENT KILL)", c->id(), c->peer(), self->id());
    c->close();
  }
  if (!old_form) resp::add_integer(req.reply, static_cast<int64_t>(matched.size()));
  else if (matched.empty()) resp::add_error(req.reply, "ERR No such client");
  else resp::add_simple(req.reply, "OK");
  if (close_self) self->close_after_replies();
}

// CLIENT REPLY ON|OFF|SKIP: applied where this request's reply falls in the client's
// reply order (ClientConn::gated_output). ON answers +OK; OFF and SKIP answer nothing.
void client_reply(Request& req) {
  std::string_view mode = req.argv[2];
  if (iequals(mode, "on")) {
    req.reply_switch = ReplySwitch::On;
    resp::add_simple(req.reply, "OK");
  } else if (iequals(mode, "off")) {
    req.reply_switch = ReplySwitch::Off;
  } else if (iequals(mode, "skip")) {
    req.reply_switch = ReplySwitch::Skip;
  } else {
    return syntax_error(req);
  }
  req.client->reply_switch_dispatched();
}

// CLIENT PAUSE timeout [WRITE|ALL]: this headroom's clients, for timeout ms.
void client_pause(Server& server, Request& req) {
  auto& argv = req.argv;
  if (argv.size() > 4) return subcommand_syntax_error(req);
  Server::PauseKind kind = Server::PauseKind::All;
  if (argv.size() == 4) {
    if (iequals(argv[3], "write")) kind = Server::PauseKind::Write;
    else if (iequals(argv[3], "all")) kind = Server::PauseKind::All;
    else {
      resp::add_error(req.reply, "ERR CLIENT PAUSE mode must be WRITE or ALL");
      return;
    }
  }
  int64_t timeout = 0;
  if (!redis_integer(argv[2], timeout)) {
    resp::add_error(req.reply, "ERR timeout is not an integer or out of range");
    return;
  }
  if (timeout < 0) {
    resp::add_error(req.reply, "ERR timeout is negative");
    return;
  }
  uv_update_time(server.loop());  // the pause lasts at least `timeout` from now, not from the turn's start
  const uint64_t now = uv_now(server.loop());
  if (timeout > 0 && static_cast<uint64_t>(timeout) > std::numeric_limits<uint64_t>::max() / 2 - now) {
    resp::add_error(req.reply, "ERR timeout is out of range");
    return;
  }
  server.pause_clients(kind, timeout > 0 ? now + static_cast<uint64_t>(timeout) : 0);
  resp::add_simple(req.reply, "OK");
}

// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p]... [OPTIN] [OPTOUT]
// [NOLOOP]: the options are checked as Redis checks them, then ON is refused: its
// invalidations come from the node that holds each key, and headroom would have to
// track every client's keys on every node and relay them. OFF is what every headroom
// client already is.
void client_tracking(Server& server, Request& req) {
  auto& argv = req.argv;
  bool redirect = false, bcast = false, optin = false, optout = false;
  std::vector<std::string_view> prefixes;
  for (size_t j = 3; j < argv.size(); ++j) {
    const bool more = j + 1 < argv.size();
    std::string_view opt = argv[j];
    if (iequals(opt, "redirect") && more) {
      ++j;
      if (redirect) {
        resp::add_error(req.reply, "ERR A client can only redirect to a single other client");
        return;
      }
      int64_t to = 0;
      if (!redis_integer(argv[j], to)) {
        resp::add_error(req.reply, "ERR value is not an integer or out of range");
        return;
      }
      if (to <= 0 || server.client_by_id(static_cast<uint64_t>(to)) == nullptr) {
        resp::add_error(req.reply, "ERR The client ID you want redirect to does not exist");
        return;
      }
      redirect = true;
    } else if (iequals(opt, "bcast")) {
      bcast = true;
    } else if (iequals(opt, "optin")) {
      optin = true;
    } else if (iequals(opt, "optout")) {
      optout = true;
    } else if (iequals(opt, "noloop")) {
    } else if (iequals(opt, "prefix") && more) {
      prefixes.push_back(argv[++j]);
    } else {
      return syntax_error(req);
    }
  }
  if (iequals(argv[2], "off")) {
    resp::add_simple(req.reply, "OK");
    return;
  }
  if (!iequals(argv[2], "on")) return syntax_error(req);
  if (!bcast && !prefixes.empty()) {
    resp::add_error(req.reply, "ERR PREFIX option requires BCAST mode to be enabled");
    return;
  }
  if (bcast && (optin || optout)) {
    resp::add_error(req.reply, "ERR OPTIN and OPTOUT are not compatible with BCAST");
    return;
  }
  if (optin && optout) {
    resp::add_error(req.reply, "ERR You can't specify both OPTIN mode and OPTOUT mode");
    return;
  }
  for (size_t i = 0; i < prefixes.size(); ++i)
    for (size_t j = i + 1; j < prefixes.size(); ++j) {
      const size_t n = std::min(prefixes[i].size(), prefixes[j].size());
      if (prefixes[i].substr(0, n) == prefixes[j].substr(0, n)) {
        resp::add_error(req.reply, "ERR Prefix '" + std::string(prefixes[i]) + "' overlaps with another provided prefix '" +
                                       std::string(prefixes[j]) + "'. Prefixes for a single client must not overlap.");
        return;
      }
    }
  resp::add_error(req.reply,
                  "ERR CLIENT TRACKING is not supported by headroom: a key's invalidation messages come from the data "
                  "node that holds it, and headroom does not relay them");
}

// CLIENT TRACKINGINFO of a client that does not track.
void client_trackinginfo(Request& req) {
  resp::Buffer& out = req.reply;
  if (req.client->resp3()) resp::add_map_header(out, 3);
  else resp::add_array_header(out, 6);
  resp::add_bulk(out, "flags");
  resp::add_array_header(out, 1);
  resp::add_bulk(out, "off");
  resp::add_bulk(out, "redirect");
  resp::add_integer(out, -1);
  resp::add_bulk(out, "prefixes");
  resp::add_array_header(out, 0);
}

// CLIENT UNBLOCK <id> [TIMEOUT|ERROR], of a headroom client id: a client blocked on a
// node has a connection of its own there, which is unblocked (on the node's control
// connection) as asked. 1 when the client was blocked, as Redis answers.
void client_unblock(Server& server, Request& req) {
  auto& argv = req.argv;
  if (argv.size() > 4) return subcommand_syntax_error(req);
  std::string_view how = argv.size() > 3 ? argv[3] : "TIMEOUT";
  if (!iequals(how, "timeout") && !iequals(how, "error")) {  // as Redis: checked before the id
    resp::add_error(req.reply, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    return;
  }
  int64_t id = 0;
  if (!redis_integer(argv[2], id)) {
    resp::add_error(req.reply, "ERR value is not an integer or out of range");
    return;
  }
  ClientConn* target = id > 0 ? server.client_by_id(static_cast<uint64_t>(id)) : nullptr;
  const Lease* lease = target != nullptr ? &target->lease() : nullptr;
  balancer::ControlConn* control = lease != nullptr && lease->blocking ? server.poller().conn(lease->node) : nullptr;
  if (control == nullptr || lease->conn->node_client_id() == 0) {
    resp::add_integer(req.reply, 0);
    return;
  }
  const std::string node_id = std::to_string(lease->conn->node_client_id());
  control->post({"CLIENT", "UNBLOCK", node_id, how});
  resp::add_integer(req.reply, 1);
}

}  // namespace

void run_client_command(Server& server, Request& req) {
  auto& argv = req.argv;
  switch (req.cmd->local) {
    case LocalCommand::ClientList:
      client_list(server, req);
      break;
    case LocalCommand::ClientInfo: {
      std::string line;
      append_line(line, server, *req.client, uv_now(server.loop()));
      reply_text(req, line);
      break;
    }
    case LocalCommand::ClientKill:
      client_kill(server, req);
      break;
    case LocalCommand::ClientReply:
      client_reply(req);
      break;
    case LocalCommand::ClientNoEvict:
      if (iequals(argv[2], "on") || iequals(argv[2], "off")) {
        req.client->set_no_evict(iequals(argv[2], "on"));
        resp::add_simple(req.reply, "OK");
      } else {
        syntax_error(req);
      }
      break;
    case LocalCommand::ClientPause:
      client_pause(server, req);
      break;
    case LocalCommand::ClientUnpause:
      server.end_pause();
      resp::add_simple(req.reply, "OK");
      break;
    case LocalCommand::ClientTracking:
      client_tracking(server, req);
      break;
    case LocalCommand::ClientTrackinginfo:
      client_trackinginfo(req);
      break;
    case LocalCommand::ClientGetredir:  // as Redis for a client that does not track
      resp::add_integer(req.reply, -1);
      break;
    case LocalCommand::ClientCaching:  // as Redis for a client that does not track, whatever the argument
      resp::add_error(req.reply,
                      "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT "
                      "mode enabled");
      break;
    case LocalCommand::ClientUnblock:
      client_unblock(server, req);
      break;
    default:
      resp::add_error(req.reply, "ERR command '" + std::string(req.cmd->name) + "' is not supported by headroom");
      break;
  }
}

}  // namespace headroom::proxy
