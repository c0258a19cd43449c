// INFO: headroom's own sections, plus the keyspace summed across nodes and a nodes
// section with each node's figures (as the memory poller last read them).
#include <unistd.h>
#include <uv.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <span>
#include <string>

#include "balancer/mover.h"
#include "balancer/rebalancer.h"
#include "balancer/sweep.h"
#include "proxy/local_commands.h"
#include "proxy/server.h"
#include "resp/ascii.h"

namespace headroom::proxy {

namespace {

void line(std::string& out, std::string_view key, const std::string& value) {
  out.append(key);
  out.push_back(':');
  out.append(value);
  out.append("\r\n");
}
void line(std::string& out, std::string_view key, uint64_t value) { line(out, key, std::to_string(value)); }

// The data nodes' lowest Redis version (what a client may rely on whichever node its
// keys are on), as the poller read them; 7.0.0 until one answered.
std::string lowest_node_version(Server& server) {
  std::string best;
  std::array<unsigned, 3> best_parts{};
  for (const auto& n : server.nodes().all()) {
    if (n.redis_version.empty()) continue;
    std::array<unsigned, 3> parts{};
    std::string_view v = n.redis_version;
    for (auto& p : parts) {
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), p);
      v.remove_prefix(static_cast<size_t>(end - v.data()));
      if (ec != std::errc() || v.empty() || v[0] != '.') break;
      v.remove_prefix(1);
    }
    if (best.empty() || parts < best_parts) best = n.redis_version, best_parts = parts;
  }
  return best.empty() ? std::string("7.0.0") : best;
}

}  // namespace

std::string build_info(Server& server, std::span<const std::string_view> sections) {
  // As Redis 7: any number of sections; none, "default", "all" or "everything": every one.
  bool all = sections.empty();
  for (auto a : sections)
    if (resp::iequals(a, "default") || resp::iequals(a, "all") || resp::iequals(a, "everything")) all = true;
  auto want = [&](std::string_view s) {
    if (all) return true;
    for (auto a : sections)
      if (resp::iequals(a, s)) return true;
    return false;
  };
  std::string out;
  uint64_t now_ms = uv_now(server.loop());
  const auto& cfg = server.config();
  auto& stats = server.stats();

  if (want("server")) {
    out += "# Server\r\n";
    line(out, "headroom_version", std::string(HEADROOM_VERSION));
    line(out, "redis_version", lowest_node_version(server));
    line(out, "redis_mode", std::string("standalone"));
    line(out, "arch_bits", static_cast<uint64_t>(sizeof(void*) * 8));
    line(out, "process_id", static_cast<uint64_t>(getpid()));
    // As Redis: tcp_port is the plaintext port (0 when every client must use TLS).
    bool tls_only = cfg.tls.enabled && !cfg.tls.separate_port;
    line(out, "tcp_port", tls_only ? 0 : cfg.listen.port);
    if (cfg.tls.enabled) line(out, "tls_port", cfg.tls.separate_port ? cfg.tls.listen.port : cfg.listen.port);
    line(out, "uptime_in_seconds", (now_ms - server.start_time_ms()) / 1000);
    line(out, "config_file", server.config_path());
    out += "\r\n";
  }
  if (want("clients")) {
    out += "# Clients\r\n";
    line(out, "connected_clients", server.client_count());
    line(out, "maxclients", cfg.max_clients);
    line(out, "leased_connections", server.leases().open_count());  // a client's own (WATCH, blocking calls)
    line(out, "blocked_clients", server.blocked_clients());
    out += "\r\n";
  }
  if (want("memory")) {
    size_t rss = 0;
    uv_resident_set_memory(&rss);
    // used_memory and maxmemory as Redis names them: the data nodes' together, as the
    // memory poller last read them (what a client sizing its writes wants to know).
    uint64_t used = 0, max = 0;
    for (const auto& n : server.nodes().all()) {
      used += server.ledger().figures(n.index).used_memory;
      max += server.ledger().figures(n.index).maxmemory;
    }
    out += "# Memory\r\n";
    line(out, "used_memory", used);
    line(out, "maxmemory", max);
    line(out, "used_memory_rss", rss);
    line(out, "directory_entries", server.directory().size());
    line(out, "directory_memory_estimate", server.directory().memory_estimate());
    out += "\r\n";
  }
  if (want("persistence")) {  // the nodes', as the poller last read them: any node's work shows
    bool loading = false, aof = false, rewriting = false, scheduled = false, saving = false;
    uint64_t changes = 0;
    for (const auto& n : server.nodes().all()) {
      const auto& p = n.persistence;
      loading |= p.loading;
      aof |= p.aof_enabled;
      // As one Redis, whose CONFIG SET appendonly yes has forked its rewrite before
      // answering: from that answer until the node's next poll, a rewrite is under way.
      rewriting |= p.aof_rewrite_in_progress || n.persistence_seen < n.persistence_changes;
      scheduled |= p.aof_rewrite_scheduled;
      saving |= p.rdb_bgsave_in_progress;
      changes += p.rdb_changes_since_last_save;
    }
    out += "# Persistence\r\n";
    line(out, "loading", loading ? 1 : 0);
    line(out, "async_loading", uint64_t{0});
    line(out, "rdb_changes_since_last_save", changes);
    line(out, "rdb_bgsave_in_progress", saving ? 1 : 0);
    line(out, "aof_enabled", aof ? 1 : 0);
    line(out, "aof_rewrite_in_progress", rewriting ? 1 : 0);
    line(out, "aof_rewrite_scheduled", scheduled ? 1 : 0);
    out += "\r\n";
  }
  if (want("stats")) {
    out += "# Stats\r\n";
    line(out, "total_connections_received", stats.connections_received);
    line(out, "rejected_connections", stats.rejected_connections);
    line(out, "total_commands_processed", stats.commands_processed);
    line(out, "total_commands_forwarded", stats.commands_forwarded);
    line(out, "total_fragments_sent", stats.fragments_sent);
    line(out, "total_local_replies", stats.local_replies);
    line(out, "total_error_replies", stats.error_replies_sent);  // as Redis: every error reply
    line(out, "total_headroom_error_replies", stats.error_replies);  // those headroom itself produced
    line(out, "total_crossnode_errors", stats.crossnode_errors);
    line(out, "total_colocations", stats.colocations);
    line(out, "total_blocking_given_back", stats.blocking_given_back);
    line(out, "total_placements", stats.placements);
    line(out, "total_placement_errors", stats.placement_errors);
    line(out, "total_protocol_errors", stats.protocol_errors);
    line(out, "total_tls_errors", stats.tls_errors);
    line(out, "total_pipeline_pauses", stats.pipeline_pauses);
    line(out, "total_net_input_bytes", stats.net_input_bytes);
    line(out, "total_net_output_bytes", stats.net_output_bytes);
    out += "\r\n";
  }
  if (want("replication")) {  // to its clients headroom is a primary; replicas are the nodes' business
    out += "# Replication\r\n";
    line(out, "role", std::string("master"));
    line(out, "connected_slaves", uint64_t{0});
    line(out, "master_failover_state", std::string("no-failover"));
    line(out, "master_repl_offset", uint64_t{0});
    out += "\r\n";
  }
  if (want("cpu")) {
    uv_rusage_t ru{};
    uv_getrusage(&ru);
    auto secs = [](const uv_timeval_t& t) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6);
      return std::string(buf);
    };
    out += "# CPU\r\n";
    line(out, "used_cpu_sys", secs(ru.ru_stime));
    line(out, "used_cpu_user", secs(ru.ru_utime));
    line(out, "used_cpu_sys_children", std::string("0.000000"));  // headroom forks no children
    line(out, "used_cpu_user_children", std::string("0.000000"));
    out += "\r\n";
  }
  if (want("errorstats")) {  // error replies headroom sent, by kind (Server::count_error)
    out += "# Errorstats\r\n";
    for (const auto& [kind, count] : server.error_stats()) line(out, "errorstat_" + kind, "count=" + std::to_string(count));
    out += "\r\n";
  }
  if (want("directory")) {
    auto& store = server.main_store();
    auto& coord = server.coordinator();
    const auto& c = coord.counters();
    out += "# Directory\r\n";
    line(out, "directory_current", store.current() ? 1 : 0);
    line(out, "directory_entries", server.directory().size());
    line(out, "directory_applied_seq", store.applied_seq());
    line(out, "directory_flushes_received", store.flushes_received());
    line(out, "directory_holds", store.holds());
    line(out, "directory_acked_seq", store.acked_seq());
    line(out, "directory_flushed_seq", server.directory().flushed_seq());
    line(out, "proxy_id", store.origin());
    line(out, "coordinator", coord.active() ? 1 : 0);
    line(out, "coordinator_waiting", coord.waiting());
    line(out, "coordinator_notifications", c.notifications);
    line(out, "coordinator_retired", c.retired);
    line(out, "coordinator_removed", c.removed);
    line(out, "coordinator_revived", c.revived);
    line(out, "coordinator_fenced", c.fenced);
    line(out, "coordinator_orphans_adopted", c.orphans);
    line(out, "coordinator_misplaced", c.misplaced);
    line(out, "coordinator_sweep_passes", coord.sweep().passes());
    line(out, "coordinator_sweep_catching_up", coord.active() && coord.sweep().catching_up() ? 1 : 0);
    line(out, "coordinator_sweep_entries_checked", coord.sweep().entries_checked());
    line(out, "coordinator_sweep_keys_scanned", coord.sweep().keys_scanned());
    out += "\r\n";
  }
  // As Redis: not in the default sections; with "all", "everything" or by name.
  bool everything = false;
  for (auto a : sections) everything |= resp::iequals(a, "all") || resp::iequals(a, "everything");
  bool named = false;
  for (auto a : sections) named |= resp::iequals(a, "commandstats");
  if (everything || named) {  // calls, time (end to end through headroom), failures
    out += "# Commandstats\r\n";
    const auto rows = resp::all_commands();
    const auto& cs = server.command_stats();
    for (size_t i = 0; i < cs.size(); ++i) {
      if (cs[i].calls == 0) continue;
      const uint64_t usec = cs[i].ns / 1000;
      char per[32];
      std::snprintf(per, sizeof per, "%.2f", static_cast<double>(usec) / static_cast<double>(cs[i].calls));
      line(out, "cmdstat_" + std::string(rows[i].name),
           "calls=" + std::to_string(cs[i].calls) + ",usec=" + std::to_string(usec) + ",usec_per_call=" + per +
               ",rejected_calls=0,failed_calls=" + std::to_string(cs[i].failed));
    }
    out += "\r\n";
  }
  if (want("moves")) {  // docs/moves.md; the mover's counters are the coordinator's
    const auto& m = server.coordinator().mover().counters();
    const auto& rb = server.coordinator().rebalancer().counters();
    out += "# Moves\r\n";
    line(out, "moving_entries", server.directory().moving());
    size_t draining = 0;
    for (const auto& n : server.nodes().all()) draining += n.draining ? 1 : 0;
    line(out, "draining_nodes", draining);
    line(out, "mover_batches", m.batches);
    line(out, "mover_entries_moved", m.entries_moved);
    line(out, "mover_keys_moved", m.keys_moved);
    line(out, "mover_bytes_moved", m.bytes_moved);
    line(out, "mover_entries_undone", m.entries_undone);
    line(out, "mover_entries_finished", m.entries_finished);
    line(out, "mover_errors", m.errors);
    line(out, "rebalancer_memory_moved", rb.bytes_chosen);
    line(out, "rebalancer_skipped_large", rb.skipped_large);
    line(out, "rebalancer_asked", rb.asked);
    out += "\r\n";
  }
  if (want("cluster")) {  // clients read it at connect: headroom is no Redis Cluster
    out += "# Cluster\r\n";
    line(out, "cluster_enabled", uint64_t{0});
    out += "\r\n";
  }
  auto& nodes = server.nodes();
  if (want("keyspace")) {
    uint64_t keys = 0;
    for (const auto& n : nodes.all()) keys += server.ledger().figures(n.index).keys;
    out += "# Keyspace\r\n";
    if (keys > 0) out += "db0:keys=" + std::to_string(keys) + ",expires=0,avg_ttl=0\r\n";
    out += "\r\n";
  }
  if (want("nodes")) {
    out += "# Nodes\r\n";
    const auto& main = server.main_store().config();
    line(out, "main", "name=" + main.name + ",address=" + conf::to_string(main.address) +
                          ",status=" + (server.main_store().up() ? "up" : "down"));
    const auto& ledger = server.ledger();
    for (const auto& n : nodes.all()) {
      char fill[32];
      std::snprintf(fill, sizeof fill, "%.4f", ledger.projected_fill(n.index));
      const auto& f = ledger.figures(n.index);
      line(out, n.name(),
           "address=" + conf::to_string(n.config.address) +
               ",status=" + (server.node_available(n.index) && n.reachable ? "up" : "down") +
               ",used_memory=" + std::to_string(f.used_memory) + ",maxmemory=" + std::to_string(f.maxmemory) +
               ",capacity=" + std::to_string(ledger.capacity(n.index)) + ",keys=" + std::to_string(f.keys) +
               ",fill=" + fill);
    }
    out += "\r\n";
  }
  if (out.size() >= 2) out.resize(out.size() - 2);  // no blank line after the last section
  return out;
}

}  // namespace headroom::proxy
