#include "proxy/local_commands.h"

#include <algorithm>
#include <charconv>

#include <spdlog/spdlog.h>

#include "proxy/client_commands.h"
#include "proxy/client_conn.h"
#include "proxy/request.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {

using resp::iequals;

// Compares without an early exit, so the time taken says nothing about where a
// guess went wrong.
bool constant_time_equal(std::string_view a, std::string_view b) {
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// AUTH [username] password, as Redis with requirepass: the only user is "default".
// Returns true when the client is now authenticated; otherwise appends the error.
bool authenticate(Server& server, Request& req, std::string_view user, std::string_view password,
                  resp::Buffer& out) {
  const std::string& want = server.config().requirepass;
  bool ok = user == "default" && (want.empty() || constant_time_equal(password, want));
  if (!ok) {
    resp::add_error(out, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  req.client->set_authenticated(true);
  return true;
}

bool parse_i64(std::string_view s, int64_t& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Sets the client's name if Redis would accept it (no spaces, newlines or other
// special characters); otherwise appends Redis's error to `out` and returns false.
bool set_client_name(Request& req, std::string_view name, resp::Buffer& out) {
  for (char c : name) {
    if (c < '!' || c > '~') {
      resp::add_error(out, "ERR Client names cannot contain spaces, newlines or special characters.");
      return false;
    }
  }
  req.client->set_name(std::string(name));
  return true;
}

void hello(Server& server, Request& req) {
  auto& argv = req.argv;
  resp::Buffer& out = req.reply;
  if (argv.size() >= 2) {
    int64_t ver = 0;
    if (!parse_i64(argv[1], ver)) {
      resp::add_error(out, "ERR Protocol version is not an integer or out of range");
      return;
    }
    if (ver != 2 && ver != 3) {
      resp::add_error(out, "NOPROTO sorry, this protocol version is not supported.");
      return;
    }
    for (size_t i = 2; i < argv.size(); ++i) {
      if (iequals(argv[i], "setname") && i + 1 < argv.size()) {
        if (!set_client_name(req, argv[i + 1], out)) return;
        ++i;
      } else if (iequals(argv[i], "auth") && i + 2 < argv.size()) {
        if (!authenticate(server, req, argv[i + 1], argv[i + 2], out)) return;
        i += 2;
      } else {
        resp::add_error(out, "ERR Syntax error in HELLO option '" + std::string(argv[i]) + "'");
        return;
      }
    }
  }
  if (!req.client->authenticated()) {
    resp::add_error(out,
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> "
                    "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
                    "version at the same time");
    return;
  }
  // The switch, once every option is accepted: from the next command on, replies
  // (and the nodes' connections its commands take) are in that protocol.
  if (argv.size() >= 2 && req.client->resp3() != (argv[1] == "3")) {
    // The connections of the client's own speak the protocol they were opened in.
    if (req.client->subscribed() || req.client->lease().conn != nullptr) {
      resp::add_error(out, "ERR HELLO to another protocol while subscribed or watching is not supported by headroom");
      return;
    }
    if (req.client->has_subscriber()) req.client->drop_subscriber();  // none subscribed: opened again as needed
    req.client->set_resp3(argv[1] == "3");
  }
  const bool resp3 = req.client->resp3();
  if (resp3) resp::add_map_header(out, 7);
  else resp::add_array_header(out, 14);
  resp::add_bulk(out, "server");
  resp::add_bulk(out, "redis");
  resp::add_bulk(out, "version");
  resp::add_bulk(out, "7.0.0");
  resp::add_bulk(out, "proto");
  resp::add_integer(out, resp3 ? 3 : 2);
  resp::add_bulk(out, "id");
  resp::add_integer(out, static_cast<int64_t>(req.client->id()));
  resp::add_bulk(out, "mode");
  resp::add_bulk(out, "standalone");
  resp::add_bulk(out, "role");
  resp::add_bulk(out, "master");
  resp::add_bulk(out, "modules");
  resp::add_array_header(out, 0);
  (void)server;
}

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: headroom stops gracefully (it stops
// reading, delivers every reply in flight, then exits); the options concern a Redis
// server's data, which headroom does not hold, and are accepted for compatibility.
// As Redis, the client gets no reply: its connection closes.
// SLOWLOG GET [count] in Redis's format: per entry id, unix time, microseconds, the
// arguments, the client's address and name (newest first; count -1: all; default 10).
void slowlog_get(Server& server, Request& req) {
  resp::Buffer& out = req.reply;
  int64_t count = 10;
  if (req.argv.size() > 2) {
    std::string_view a = req.argv[2];
    auto r = std::from_chars(a.data(), a.data() + a.size(), count);
    if (r.ec != std::errc() || r.ptr != a.data() + a.size() || count < -1) {
      resp::add_error(out, "ERR count should be greater than or equal to -1");
      return;
    }
  }
  const auto& entries = server.slowlog().entries();
  const size_t n = count < 0 ? entries.size() : std::min(entries.size(), static_cast<size_t>(count));
  resp::add_array_header(out, static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) {
    const SlowEntry& e = entries[i];
    resp::add_array_header(out, 6);
    resp::add_integer(out, static_cast<int64_t>(e.id));
    resp::add_integer(out, e.unix_time);
    resp::add_integer(out, static_cast<int64_t>(e.duration_us));
    resp::add_array_header(out, static_cast<int64_t>(e.args.size()));
    for (const auto& a : e.args) resp::add_bulk(out, a);
    resp::add_bulk(out, e.client_addr);
    resp::add_bulk(out, e.client_name);
  }
}

void shutdown_command(Server& server, Request& req) {
  bool save = false, nosave = false, abort = false;
  for (size_t i = 1; i < req.argv.size(); ++i) {
    std::string_view a = req.argv[i];
    if (iequals(a, "save")) save = true;
    else if (iequals(a, "nosave")) nosave = true;
    else if (iequals(a, "abort")) abort = true;
    else if (!iequals(a, "now") && !iequals(a, "force")) {
      resp::add_error(req.reply, "ERR syntax error");
      return;
    }
  }
  if ((save && nosave) || (abort && req.argv.size() > 2)) {
    resp::add_error(req.reply, "ERR syntax error");
    return;
  }
  if (abort) {
    resp::add_error(req.reply, "ERR No shutdown in progress.");
    return;
  }
  spdlog::warn("SHUTDOWN from client {} ({}): stopping", req.client->id(), req.client->peer());
  server.shutdown();
}

}  // namespace

void run_local_command(Server& server, Request& req) {
  auto& argv = req.argv;
  resp::Buffer& out = req.reply;
  using resp::LocalCommand;
  switch (req.cmd->local) {
    case LocalCommand::Ping:
      // Redis's row says at least one argument; its PING checks for at most two itself.
      if (argv.size() > 2) {
        resp::add_error(out, "ERR wrong number of arguments for 'ping' command");
      } else if (req.client->in_subscribed_mode()) {  // as Redis: ["pong", the argument or ""]
        resp::add_array_header(out, 2);
        resp::add_bulk(out, "pong");
        resp::add_bulk(out, argv.size() > 1 ? argv[1] : std::string_view());
      } else if (argv.size() > 1) {
        resp::add_bulk(out, argv[1]);
      } else {
        resp::add_simple(out, "PONG");
      }
      break;
    case LocalCommand::Echo:
      resp::add_bulk(out, argv[1]);
      break;
    case LocalCommand::Quit:
      resp::add_simple(out, "OK");
      req.client->close_after_replies();
      break;
    case LocalCommand::Select: {
      int64_t db = 0;
      if (!parse_i64(argv[1], db)) resp::add_error(out, "ERR value is not an integer or out of range");
      else if (db != 0) resp::add_error(out, "ERR headroom serves database 0 only");
      else resp::add_simple(out, "OK");
      break;
    }
    case LocalCommand::Hello:
      hello(server, req);
      break;
    case LocalCommand::Auth:
      if (argv.size() == 2 && server.config().requirepass.empty()) {
        resp::add_error(out,
                        "ERR AUTH <password> called without any password configured for the default user. Are you "
                        "sure your configuration is correct?");
      } else if (argv.size() > 3) {
        resp::add_error(out, "ERR syntax error");
      } else if (authenticate(server, req, argv.size() == 3 ? argv[1] : "default", argv.back(), out)) {
        resp::add_simple(out, "OK");
      }
      break;
    case LocalCommand::ClientSetname:
      if (set_client_name(req, argv[2], out)) resp::add_simple(out, "OK");
      break;
    case LocalCommand::ClientGetname:
      if (req.client->name().empty()) resp::add_nil(out, req.client->resp3());
      else resp::add_bulk(out, req.client->name());
      break;
    case LocalCommand::ClientId:
      resp::add_integer(out, static_cast<int64_t>(req.client->id()));
      break;
    case LocalCommand::ClientSetinfo:
      resp::add_simple(out, "OK");
      break;
    case LocalCommand::AclWhoami:
      resp::add_bulk(out, "default");
      break;
    case LocalCommand::ClientUnblock:
    case LocalCommand::ClientList:
    case LocalCommand::ClientInfo:
    case LocalCommand::ClientKill:
    case LocalCommand::ClientReply:
    case LocalCommand::ClientNoEvict:
    case LocalCommand::ClientPause:
    case LocalCommand::ClientUnpause:
    case LocalCommand::ClientTracking:
    case LocalCommand::ClientTrackinginfo:
    case LocalCommand::ClientGetredir:
    case LocalCommand::ClientCaching:
      run_client_command(server, req);  // proxy/client_commands.cpp
      break;
    case LocalCommand::Shutdown:
      shutdown_command(server, req);
      break;
    case LocalCommand::Monitor:
      server.add_monitor(req.client);
      resp::add_simple(out, "OK");
      break;
    case LocalCommand::SlowlogGet:
      slowlog_get(server, req);
      break;
    case LocalCommand::SlowlogLen:
      resp::add_integer(out, static_cast<int64_t>(server.slowlog().entries().size()));
      break;
    case LocalCommand::SlowlogReset:
      server.slowlog().reset();
      resp::add_simple(out, "OK");
      break;
    case LocalCommand::LatencyEmpty:  // no latency events: what Redis answers without any
      resp::add_array_header(out, 0);
      break;
    case LocalCommand::LatencyReset:
      resp::add_integer(out, 0);
      break;
    case LocalCommand::Info: {
      std::span<const std::string_view> sections(argv.data() + 1, argv.size() - 1);
      if (req.client->resp3())  // as Redis: a verbatim string in RESP3
        resp::add_verbatim(out, "txt", build_info(server, sections));
      else
        resp::add_bulk(out, build_info(server, sections));
      break;
    }
    case LocalCommand::Multi:  // Route::Transaction: the router answers them
    case LocalCommand::Exec:
    case LocalCommand::Discard:
    case LocalCommand::Watch:
    case LocalCommand::Unwatch:
    case LocalCommand::Subscribe:  // Route::PubSub: route_pubsub.cpp
    case LocalCommand::Psubscribe:
    case LocalCommand::Ssubscribe:
    case LocalCommand::Unsubscribe:
    case LocalCommand::Punsubscribe:
    case LocalCommand::Sunsubscribe:
    case LocalCommand::Publish:
    case LocalCommand::PubsubChannels:
    case LocalCommand::PubsubNumsub:
    case LocalCommand::PubsubNumpat:
    case LocalCommand::None:
      resp::add_error(out, "ERR command '" + std::string(req.cmd->name) + "' is not supported by headroom");
      break;
  }
}

}  // namespace headroom::proxy
