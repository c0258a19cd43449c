// The figures the admin port serves (proxy/admin_http.h): built at scrape time from the
// counters the data path already keeps (Stats, the ledger, the directory, the mover),
// so the request path pays nothing for them. prometheus-cpp gives the metric model and
// the Prometheus text format; /stats renders the same families as JSON.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace headroom::proxy {

class Server;
struct Stats;

// Rates over the last whole second (the admin port samples the counters every second),
// so a reader that looks once sees what a rate() over a second would.
struct Rates {
  double commands_per_s = 0;
  double errors_per_s = 0;
};

std::vector<prometheus::MetricFamily> collect_metrics(Server& server, const Rates& rates);
// The Prometheus text exposition format (version 0.0.4).
std::string metrics_text(Server& server, const Rates& rates);
// {"<family>": value | [{"labels": {...}, "value": v}, ...], ...}
std::string stats_json(Server& server, const Rates& rates);
// Every error headroom answered, of every kind (what errors_per_s counts).
uint64_t total_errors(const Stats& s);
// [{"name", "address", "state", "draining", "used_memory", "size", "fill", "keys"}, ...]
std::string nodes_json(Server& server);
// A JSON string literal (quotes and escapes).
std::string json_string(std::string_view s);

}  // namespace headroom::proxy
