// Route::Admin: HEADROOM, the operator's command (docs/moves.md). Its state is shared
// through the main server, so any proxy can be asked:
//   HEADROOM NODES                 each node's figures, drain progress, the mover's counters
//   HEADROOM DRAIN <node> [OFF]    the node takes no new keys, and the rebalancer empties it
//   HEADROOM REBALANCE             balance now (even with rebalance.enabled off), until balanced
//   HEADROOM MOVE <key> <node>     move one key (its hash tag's keys with it) to that node
//   HEADROOM RELOAD                read the config again (as SIGHUP; proxy/reload.cpp)
#include <uv.h>

#include <cinttypes>
#include <cstdio>

#include "balancer/directory.h"
#include "balancer/directory_scripts.h"
#include "balancer/mover.h"
#include "balancer/rebalancer.h"
#include "proxy/reply_encode.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {

constexpr std::string_view kHelp[] = {
    "HEADROOM <subcommand> [<arg> ...]. Subcommands are:",
    "NODES",
    "    Each data node: address, state, memory, keys, drain progress; the mover's counters.",
    "DRAIN <node> [OFF]",
    "    The node takes no new keys and its keys move to the others (OFF: it takes keys again).",
    "REBALANCE",
    "    Move keys from the fullest nodes to the emptiest now, until every node is within the threshold.",
    "RELOAD",
    "    Read the config file again (as SIGHUP): nodes added, drain marks, capacities, limits, timeouts, log level.",
    "MOVE <key> <node>",
    "    Move one key (with every key of its hash tag) to the node.",
    "HELP",
    "    Print this help.",
};

}  // namespace

std::string Router::nodes_report() {
  std::string out;
  const auto& nodes = server_.nodes();
  const uint64_t now = uv_now(server_.loop());
  char buf[768];
  for (balancer::NodeIndex i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    const auto& f = server_.ledger().figures(i);
    const uint64_t size = server_.ledger().capacity(i);
    const double fill = size == 0 ? 0 : static_cast<double>(f.used_memory) / static_cast<double>(size);
    std::snprintf(buf, sizeof buf,
                  "name=%s address=%s state=%s draining=%d used_memory=%" PRIu64 " size=%" PRIu64
                  " fill=%.4f keys=%" PRIu64,
                  n.name().c_str(), conf::to_string(n.config.address).c_str(), n.reachable ? "up" : "down",
                  n.draining ? 1 : 0, f.used_memory, size, fill, f.keys);
    out += buf;
    if (n.draining) {
      // Progress as this proxy saw it since the drain began: keys gone per second, and
      // the time left at that rate.
      const double secs = static_cast<double>(now - n.drain_started_ms) / 1000.0;
      const double gone = n.drain_start_keys > f.keys ? static_cast<double>(n.drain_start_keys - f.keys) : 0;
      const double rate = secs > 0 ? gone / secs : 0;
      std::snprintf(buf, sizeof buf, " keys_left=%" PRIu64 " bytes_left=%" PRIu64 " keys_per_s=%.0f eta_s=%s", f.keys,
                    f.used_memory, rate, rate > 0 ? std::to_string(static_cast<uint64_t>(static_cast<double>(f.keys) / rate)).c_str() : "unknown");
      out += buf;
    }
    out += "\n";
  }
  const auto& c = server_.coordinator();
  const auto& m = c.mover().counters();
  std::snprintf(buf, sizeof buf,
                "mover: coordinator=%d batches=%" PRIu64 " entries_moved=%" PRIu64 " keys_moved=%" PRIu64
                " bytes_moved=%" PRIu64 " entries_undone=%" PRIu64 " entries_finished=%" PRIu64 " errors=%" PRIu64
                " skipped_large=%" PRIu64 " memory_moved=%" PRIu64 " moving_now=%zu rebalancing=%d ms_begin=%" PRIu64
                " ms_barrier=%" PRIu64 " ms_copy=%" PRIu64 " ms_restore=%" PRIu64 " ms_commit=%" PRIu64 " ms_delete=%" PRIu64
                " phase=%s phase_ms=%" PRIu64 "\n",
                c.active() ? 1 : 0, m.batches, m.entries_moved, m.keys_moved, m.bytes_moved, m.entries_undone,
                m.entries_finished, m.errors, c.rebalancer().counters().skipped_large,
                c.rebalancer().counters().bytes_chosen, server_.directory().moving(),
                c.active() && c.rebalancer().forced() ? 1 : 0, m.ms_begin, m.ms_barrier, m.ms_copy, m.ms_restore,
                m.ms_commit, m.ms_delete, c.mover().phase_name(),
                c.active() ? now - std::min(now, c.mover().phase_since_ms()) : 0);
  out += buf;
  return out;
}

bool Router::route_admin(Request* req) {
  std::span<const std::string_view> argv(req->argv);
  const std::string sub = resp::to_lower(argv[1]);
  auto arity_error = [&] {
    reply_error(req, "ERR wrong number of arguments for 'headroom|" + sub + "' command");
    return true;
  };
  if (sub == "help") {
    req->reply.clear();
    resp::add_array_header(req->reply, static_cast<int64_t>(std::size(kHelp)));
    for (auto l : kHelp) resp::add_simple(req->reply, l);
    complete(req);
    return true;
  }
  if (sub == "nodes") {
    if (argv.size() != 2) return arity_error();
    req->reply.clear();
    resp::add_bulk(req->reply, nodes_report());
    complete(req);
    return true;
  }
  if (sub == "reload") {
    if (argv.size() != 2) return arity_error();
    std::string error = server_.reload();
    if (!error.empty()) {
      reply_error(req, error);
      return true;
    }
    req->reply.clear();
    resp::add_simple(req->reply, "OK");
    complete(req);
    return true;
  }
  // The rest are recorded on the main server: answered once it has them.
  auto answer = [this, req](std::string error) {
    const uint32_t f = 0;
    resp::Buffer reply;
    if (error.empty()) resp::add_simple(reply, "OK");
    else resp::add_error(reply, error);
    on_fragment_reply(req, f, reply.view());
  };
  if (sub != "drain" && sub != "rebalance" && sub != "move") {
    reject(req, "ERR unknown subcommand '" + std::string(argv[1].substr(0, 128)) + "'. Try HEADROOM HELP.");
    return true;
  }
  if (server_.publisher() == nullptr) {
    reply_error(req, main_unavailable("HEADROOM " + resp::to_upper(argv[1]) + " is recorded there"));
    return true;
  }
  auto pending = [&] {
    add_fragment(req, 0);
    ++req->fragments_pending;
  };
  if (sub == "drain") {
    if (argv.size() != 3 && argv.size() != 4) return arity_error();
    const bool off = argv.size() == 4;
    if (off && !resp::iequals(argv[3], "off")) {
      reply_error(req, "ERR syntax error");
      return true;
    }
    auto node = server_.nodes().find(argv[2]);
    if (!node) {
      reply_error(req, "ERR no data node named '" + std::string(argv[2].substr(0, 64)) + "'");
      return true;
    }
    pending();
    server_.drain_node(*node, !off, answer);
  } else if (sub == "rebalance") {
    if (argv.size() != 2) return arity_error();
    pending();
    server_.ask_rebalancer("rebalance", answer);
  } else if (sub == "move") {
    if (argv.size() != 4) return arity_error();
    if (!server_.nodes().find(argv[3])) {
      reply_error(req, "ERR no data node named '" + std::string(argv[3].substr(0, 64)) + "'");
      return true;
    }
    pending();
    server_.ask_rebalancer("move " + std::string(argv[3]) + " " + std::string(balancer::directory_key(argv[2])), answer);
  } else {
    reject(req, "ERR unknown subcommand '" + std::string(argv[1].substr(0, 128)) + "'. Try HEADROOM HELP.");
  }
  return true;
}

}  // namespace headroom::proxy
