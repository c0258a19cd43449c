#include "proxy/metrics.h"

#include <prometheus/text_serializer.h>
#include <uv.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <deque>
#include <iterator>
#include <limits>

#include "balancer/coordinator.h"
#include "balancer/mover.h"
#include "balancer/rebalancer.h"
#include "proxy/server.h"

namespace headroom::proxy {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

struct Families {
  std::deque<MetricFamily> out;  // a deque: family() hands out references that must stay valid

  MetricFamily& family(std::string name, std::string help, MetricType type) {
    out.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return out.back();
  }
  void add(MetricFamily& f, double v, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    if (f.type == MetricType::Counter) m.counter.value = v;
    else m.gauge.value = v;
    f.metric.push_back(std::move(m));
  }
  void histogram(MetricFamily& f, const LatencyHistogram& h, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    m.histogram.sample_count = h.count;
    m.histogram.sample_sum = static_cast<double>(h.sum_ns) / 1e9;
    uint64_t cumulative = 0;
    for (size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b) {
      cumulative += h.buckets[b];
      m.histogram.bucket.push_back({cumulative, LatencyHistogram::bound_seconds(b)});
    }
    m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    f.metric.push_back(std::move(m));
  }
  void counter(std::string name, std::string help, double v) { add(family(std::move(name), std::move(help), MetricType::Counter), v); }
  void gauge(std::string name, std::string help, double v) { add(family(std::move(name), std::move(help), MetricType::Gauge), v); }
};

}  // namespace

uint64_t total_errors(const Stats& s) {
  return s.error_replies + s.protocol_errors + s.tls_errors + s.placement_errors;
}

std::vector<MetricFamily> collect_metrics(Server& server, const Rates& rates) {
  Families f;
  const Stats& s = server.stats();
  // Millisecond resolution: the live page computes its rates over this clock.
  f.gauge("headroom_uptime_seconds", "Seconds since headroom started.",
          static_cast<double>(uv_now(server.loop()) - server.start_time_ms()) / 1000.0);
  f.gauge("headroom_commands_per_second", "Commands received over the last whole second.", rates.commands_per_s);
  f.gauge("headroom_errors_per_second", "Error replies over the last whole second.", rates.errors_per_s);
  f.counter("headroom_connections_received_total", "Client connections accepted.", static_cast<double>(s.connections_received));
  f.counter("headroom_connections_rejected_total", "Client connections refused (max_clients).", static_cast<double>(s.rejected_connections));
  f.gauge("headroom_clients", "Client connections open.", static_cast<double>(server.client_count()));
  f.gauge("headroom_blocked_clients", "Clients waiting on a blocking command, or held by CLIENT PAUSE.", static_cast<double>(server.blocked_clients()));
  f.counter("headroom_commands_total", "Commands received from clients.", static_cast<double>(s.commands_processed));
  f.counter("headroom_commands_forwarded_total", "Commands sent to data nodes (a split command counts once).",
            static_cast<double>(s.commands_forwarded));
  f.counter("headroom_fragments_total", "Command fragments sent to data nodes.", static_cast<double>(s.fragments_sent));
  f.counter("headroom_local_replies_total", "Commands headroom answered itself.", static_cast<double>(s.local_replies));
  auto& errors = f.family("headroom_errors_total", "Error replies headroom produced, by kind.", MetricType::Counter);
  f.add(errors, static_cast<double>(s.error_replies), {{"kind", "reply"}});
  f.add(errors, static_cast<double>(s.crossnode_errors), {{"kind", "crossnode"}});
  f.add(errors, static_cast<double>(s.protocol_errors), {{"kind", "protocol"}});
  f.add(errors, static_cast<double>(s.tls_errors), {{"kind", "tls"}});
  f.add(errors, static_cast<double>(s.placement_errors), {{"kind", "placement"}});
  f.counter("headroom_placements_total", "New keys this proxy asked the main server to place.",
            static_cast<double>(s.placements));
  f.counter("headroom_placement_failures_total", "Placements the main server refused or did not answer.",
            static_cast<double>(s.placement_errors));
  f.counter("headroom_colocations_total", "Same-node commands whose keys were moved together.", static_cast<double>(s.colocations));
  auto& hist = f.family("headroom_request_duration_seconds",
                        "Requests from read to reply queued, by command class.", MetricType::Histogram);
  for (size_t c = 0; c < static_cast<size_t>(LatencyClass::kCount); ++c)
    f.histogram(hist, server.latency()[c], {{"class", latency_class_name(static_cast<LatencyClass>(c))}});
  f.histogram(f.family("headroom_placement_duration_seconds",
                       "A new key's wait for the main server to place it, per key.", MetricType::Histogram),
              server.placement_latency());
  auto& calls = f.family("headroom_command_calls_total", "Calls, by command (INFO commandstats).", MetricType::Counter);
  auto& failed = f.family("headroom_command_failed_total", "Calls answered with an error, by command.", MetricType::Counter);
  auto& spent = f.family("headroom_command_duration_seconds_total", "Time spent, end to end, by command.",
                         MetricType::Counter);
  const auto rows = resp::all_commands();
  const auto& cs = server.command_stats();
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].calls == 0) continue;
    const std::vector<ClientMetric::Label> l = {{"command", std::string(rows[i].name)}};
    f.add(calls, static_cast<double>(cs[i].calls), l);
    f.add(failed, static_cast<double>(cs[i].failed), l);
    f.add(spent, static_cast<double>(cs[i].ns) / 1e9, l);
  }
  f.counter("headroom_net_input_bytes_total", "Bytes read from clients.", static_cast<double>(s.net_input_bytes));
  f.counter("headroom_net_output_bytes_total", "Bytes written to clients.", static_cast<double>(s.net_output_bytes));

  auto& up = f.family("headroom_node_up", "1 when the node answers its memory polls.", MetricType::Gauge);
  auto& used = f.family("headroom_node_used_memory_bytes", "The node's used_memory at its last poll.", MetricType::Gauge);
  auto& size = f.family("headroom_node_capacity_bytes", "The node's maxmemory, or its configured capacity.", MetricType::Gauge);
  auto& fill = f.family("headroom_node_fill_ratio", "used_memory over capacity.", MetricType::Gauge);
  auto& keys = f.family("headroom_node_keys", "Keys in database 0 at the last poll.", MetricType::Gauge);
  auto& draining = f.family("headroom_node_draining", "1 while the node is being drained.", MetricType::Gauge);
  auto& backends = f.family("headroom_node_backend_connected", "1 while the data path has a connection to the node.",
                            MetricType::Gauge);
  auto& conns = f.family("headroom_backend_connections",
                         "Data-path connections to each node: shared (RESP2 and RESP3 pools) or leased "
                         "(transactions, blocking commands), connected or not (connecting, backing off).",
                         MetricType::Gauge);
  auto& inflight = f.family("headroom_backend_inflight_commands",
                            "Commands sent on the node's shared connections and not answered yet.", MetricType::Gauge);
  auto& nodes = server.nodes();
  // [node][leased][connected]
  std::vector<std::array<std::array<uint64_t, 2>, 2>> by_state(nodes.size());
  std::vector<uint64_t> in_flight(nodes.size(), 0);
  for (balancer::NodeIndex i = 0; i < nodes.size(); ++i)
    for (bool resp3 : {false, true})
      for (const auto& b : server.backends(i, resp3).all()) {
        ++by_state[i][0][b->connected() ? 1 : 0];
        in_flight[i] += b->inflight();
      }
  server.leases().for_each_conn([&](const BackendConn& b) {
    if (b.node() < by_state.size()) ++by_state[b.node()][1][b.connected() ? 1 : 0];
  });
  for (balancer::NodeIndex i = 0; i < nodes.size(); ++i) {
    const std::vector<ClientMetric::Label> l = {{"node", nodes[i].name()}};
    for (int leased : {0, 1})
      for (int up : {1, 0})
        f.add(conns, static_cast<double>(by_state[i][leased][up]),
              {{"node", nodes[i].name()}, {"kind", leased ? "leased" : "shared"}, {"state", up ? "connected" : "down"}});
    f.add(inflight, static_cast<double>(in_flight[i]), l);
    const auto& fig = server.ledger().figures(i);
    const uint64_t cap = server.ledger().capacity(i);
    f.add(up, nodes[i].reachable ? 1 : 0, l);
    f.add(used, static_cast<double>(fig.used_memory), l);
    f.add(size, static_cast<double>(cap), l);
    f.add(fill, cap == 0 ? 0 : static_cast<double>(fig.used_memory) / static_cast<double>(cap), l);
    f.add(keys, static_cast<double>(fig.keys), l);
    f.add(draining, nodes[i].draining ? 1 : 0, l);
    f.add(backends, nodes[i].backend_up ? 1 : 0, l);
  }

  auto& store = server.main_store();
  f.gauge("headroom_main_server_up", "1 while both connections to the main server are up.", store.up() ? 1 : 0);
  f.gauge("headroom_directory_current", "1 while the directory is loaded and follows every change.", store.current() ? 1 : 0);
  f.gauge("headroom_directory_entries", "Entries in this proxy's directory cache.", static_cast<double>(server.directory().size()));
  f.gauge("headroom_directory_memory_bytes", "Memory the directory cache uses.",
          static_cast<double>(server.directory().memory_estimate()));
  f.gauge("headroom_coordinator", "1 while this proxy holds the coordinator lease.", server.coordinator().active() ? 1 : 0);

  const auto& m = server.coordinator().mover().counters();
  f.gauge("headroom_moving_entries", "Directory entries being moved now.", static_cast<double>(server.directory().moving()));
  f.counter("headroom_move_batches_total", "Move batches begun by this proxy's mover.", static_cast<double>(m.batches));
  f.counter("headroom_moved_entries_total", "Entries this proxy's mover committed to their new node.", static_cast<double>(m.entries_moved));
  f.counter("headroom_moved_keys_total", "Keys this proxy's mover copied.", static_cast<double>(m.keys_moved));
  f.counter("headroom_moved_bytes_total", "DUMP bytes this proxy's mover copied.", static_cast<double>(m.bytes_moved));
  f.counter("headroom_move_undone_entries_total", "Entries put back on their source.", static_cast<double>(m.entries_undone));
  f.counter("headroom_move_errors_total", "Move steps that failed.", static_cast<double>(m.errors));
  f.counter("headroom_rebalanced_memory_bytes_total", "MEMORY USAGE of the keys the rebalancer gave the mover.",
            static_cast<double>(server.coordinator().rebalancer().counters().bytes_chosen));
  return {std::make_move_iterator(f.out.begin()), std::make_move_iterator(f.out.end())};
}

std::string metrics_text(Server& server, const Rates& rates) {
  return prometheus::TextSerializer().Serialize(collect_metrics(server, rates));
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {
std::string number(double v) {
  char buf[64];
  if (v == static_cast<double>(static_cast<int64_t>(v))) std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(v));
  else std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
}  // namespace

std::string stats_json(Server& server, const Rates& rates) {
  std::string out = "{";
  bool first = true;
  for (const auto& fam : collect_metrics(server, rates)) {
    out += first ? "" : ",";
    first = false;
    out += json_string(fam.name) + ":";
    auto value = [&](const ClientMetric& m) {
      if (fam.type == MetricType::Histogram) {
        std::string h = "{\"count\":" + std::to_string(m.histogram.sample_count) +
                        ",\"sum\":" + number(m.histogram.sample_sum) + ",\"buckets\":[";
        for (size_t b = 0; b + 1 < m.histogram.bucket.size(); ++b)
          h += (b ? ",[" : "[") + number(m.histogram.bucket[b].upper_bound) + "," +
               std::to_string(m.histogram.bucket[b].cumulative_count) + "]";
        return h + "]}";
      }
      return number(fam.type == MetricType::Counter ? m.counter.value : m.gauge.value);
    };
    if (fam.metric.size() == 1 && fam.metric[0].label.empty()) {
      out += value(fam.metric[0]);
      continue;
    }
    out += "[";
    for (size_t i = 0; i < fam.metric.size(); ++i) {
      out += i ? ",{\"labels\":{" : "{\"labels\":{";
      for (size_t l = 0; l < fam.metric[i].label.size(); ++l) {
        if (l) out += ',';
        out += json_string(fam.metric[i].label[l].name);
        out += ':';
        out += json_string(fam.metric[i].label[l].value);
      }
      out += "},\"value\":";
      out += value(fam.metric[i]);
      out += '}';
    }
    out += "]";
  }
  return out + "}";
}

std::string nodes_json(Server& server) {
  std::string out = "[";
  auto& nodes = server.nodes();
  for (balancer::NodeIndex i = 0; i < nodes.size(); ++i) {
    const auto& fig = server.ledger().figures(i);
    const uint64_t cap = server.ledger().capacity(i);
    const double fill = cap == 0 ? 0 : static_cast<double>(fig.used_memory) / static_cast<double>(cap);
    out += i ? "," : "";
    out += "{\"name\":" + json_string(nodes[i].name()) + ",\"address\":" +
           json_string(conf::to_string(nodes[i].config.address)) + ",\"state\":\"" +
           (nodes[i].reachable ? "up" : "down") + "\",\"draining\":" + (nodes[i].draining ? "true" : "false") +
           ",\"used_memory\":" + std::to_string(fig.used_memory) + ",\"size\":" + std::to_string(cap) +
           ",\"fill\":" + number(fill) + ",\"keys\":" + std::to_string(fig.keys) + "}";
  }
  return out + "]";
}

}  // namespace headroom::proxy
