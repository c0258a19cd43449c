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

std::vector<prometheus::MetricFamily> collect_metrics(Server& server);
// The Prometheus text exposition format (version 0.0.4).
std::string metrics_text(Server& server);
// {"<family>": value | [{"labels": {...}, "value": v}, ...], ...}
std::string stats_json(Server& server);
// [{"name", "address", "state", "draining", "used_memory", "size", "fill", "keys"}, ...]
std::string nodes_json(Server& server);
// A JSON string literal (quotes and escapes).
std::string json_string(std::string_view s);

}  // namespace headroom::proxy
