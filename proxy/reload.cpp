// Reloading the config without a restart (SIGHUP, HEADROOM RELOAD; docs/moves.md):
// nodes added, drain marks, capacities, limits, timeouts, log level, requirepass,
// allow_dangerous_commands, the rebalancer's settings. A config that does not load or
// validate leaves the running one in place; settings that cannot change live keep
// their value and are named in the log.
//
// Every proxy sharing the main server must serve the same node list: each records its
// list there (hr:nodes) when it starts or reloads, and one whose list differs from
// the last recorded places no new key until its own config is reloaded to match
// (Server::refresh_shared_state).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "balancer/directory_scripts.h"
#include "proxy/backend_conn.h"
#include "proxy/logging.h"
#include "proxy/router.h"
#include "proxy/server.h"

namespace headroom::proxy {

std::string Server::node_list() const {
  std::vector<std::string> items;
  for (const auto& n : config_.nodes) items.push_back(n.name + "=" + conf::to_string(n.address));
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

void Server::record_node_list() {
  if (publisher() == nullptr) {
    node_list_recorded_ = false;  // at the next refresh
    return;
  }
  node_list_recorded_ = true;
  publisher_->post({"SET", balancer::scripts::kNodesKey, node_list()});
}

namespace {
void log_drain_error(const std::string& error) {
  if (!error.empty()) spdlog::warn("reload: the drain mark is not recorded: {}", error);
}
}  // namespace

std::string Server::reload() {
  conf::Config next;
  try {
    next = conf::load_config(config_path_);
  } catch (const std::exception& e) {
    spdlog::error("reload: {}: the running config stays", e.what());
    return std::string("ERR config not reloaded, the running one stays: ") + e.what();
  }
  // The nodes first: every running node must still be there, at its address.
  std::vector<const conf::BackendConfig*> matched(nodes_.size(), nullptr);
  for (const auto& n : next.nodes) {
    auto i = nodes_.find(n.name);
    if (!i) continue;
    if (conf::to_string(n.address) != conf::to_string(nodes_[*i].config.address))
      return "ERR config not reloaded: node " + n.name + " moved from " +
             conf::to_string(nodes_[*i].config.address) + " to " + conf::to_string(n.address) +
             ": a node's address changes with a restart";
    matched[*i] = &n;
  }
  for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i) {
    if (matched[i] != nullptr) continue;
    const size_t entries = directory_.count_on(i);
    const uint64_t keys = ledger_.figures(i).keys;
    if (entries > 0 || keys > 0)
      return "ERR config not reloaded: node " + nodes_[i].name() + " holds keys (" + std::to_string(entries) +
             " directory entries; " + std::to_string(keys) + " keys at its last poll): drain it first (HEADROOM DRAIN " +
             nodes_[i].name() + "), then remove it";
    return "ERR config not reloaded: node " + nodes_[i].name() +
           " is empty, but a running proxy cannot drop a node: remove it, then restart";
  }

  // Settings that cannot change live keep their value.
  std::vector<std::string> kept;
  if (conf::to_string(next.listen) != conf::to_string(config_.listen)) kept.push_back("listen");
  if (next.main.name != config_.main.name || conf::to_string(next.main.address) != conf::to_string(config_.main.address) ||
      next.main.password != config_.main.password)
    kept.push_back("main");
  if (next.tls.enabled != config_.tls.enabled || next.tls.separate_port != config_.tls.separate_port ||
      conf::to_string(next.tls.listen) != conf::to_string(config_.tls.listen))
    kept.push_back("tls (certificates are reloaded; ports and on/off need a restart)");
  if (next.backend_tls.enabled != config_.backend_tls.enabled) kept.push_back("backend_tls");
  if (next.backend_connections != config_.backend_connections) kept.push_back("backend_connections");
  if (next.admin.enabled != config_.admin.enabled || conf::to_string(next.admin.listen) != conf::to_string(config_.admin.listen))
    kept.push_back("admin.listen (the admin port's address and on/off)");
  if (next.poll_interval_ms != config_.poll_interval_ms) kept.push_back("poll_interval_ms");
  if (next.connect_timeout_ms != config_.connect_timeout_ms || next.tcp_keepalive_s != config_.tcp_keepalive_s)
    kept.push_back("timeouts.connect_ms and tcp_keepalive_s (they apply at the next restart)");
  for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i)
    if (matched[i]->password != nodes_[i].config.password) kept.push_back("nodes[" + nodes_[i].name() + "].password");
  for (const auto& k : kept) spdlog::warn("reload: {} cannot change while running: it keeps its value", k);

  // Running nodes: capacity and the drain mark.
  for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i) {
    const conf::BackendConfig& n = *matched[i];
    if (n.drain != config_.nodes[i].drain) drain_node(i, n.drain, log_drain_error);
    config_.nodes[i].capacity = nodes_[i].config.capacity = n.capacity;
    config_.nodes[i].drain = nodes_[i].config.drain = n.drain;
  }
  ledger_.capacities_changed();

  // New nodes: the emptiest, so new keys start flowing to them at once.
  size_t added = 0;
  for (const auto& n : next.nodes) {
    if (nodes_.find(n.name)) continue;
    config_.nodes.push_back(n);
    const balancer::NodeIndex i = nodes_.add(n);
    ledger_.node_added();
    add_pools(i);
    for (int resp3 = 0; resp3 < 2; ++resp3)
      for (auto& b : backends(i, resp3 != 0).all()) b->start();
    poller_->node_added(i);
    leases_->node_added();
    coordinator_->node_added(i);
    if (n.drain) drain_node(i, true, log_drain_error);
    spdlog::info("reload: node {} ({}) added", n.name, conf::to_string(n.address));
    ++added;
  }
  if (added > 0) main_store_->nodes_added();

  // Live settings.
  config_.request_timeout_ms = next.request_timeout_ms;
  config_.client_idle_timeout_s = next.client_idle_timeout_s;
  config_.max_clients = next.max_clients;
  config_.max_request_bytes = next.max_request_bytes;
  config_.max_bulk_bytes = next.max_bulk_bytes;
  config_.max_args = next.max_args;
  config_.max_pipeline = next.max_pipeline;
  config_.max_client_output_bytes = next.max_client_output_bytes;
  config_.max_backend_inflight = next.max_backend_inflight;
  config_.max_leases_per_node = next.max_leases_per_node;
  config_.sweep_keys_per_s = next.sweep_keys_per_s;
  config_.proxy_lapse_ms = next.proxy_lapse_ms;
  config_.rebalance = next.rebalance;
  config_.slowlog_slower_than_us = next.slowlog_slower_than_us;
  config_.slowlog_max_len = next.slowlog_max_len;
  slowlog_.configure(config_.slowlog_slower_than_us, config_.slowlog_max_len);
  config_.requirepass = next.requirepass;
  config_.admin.token = next.admin.token;
  config_.admin.max_header_bytes = next.admin.max_header_bytes;
  config_.admin.max_body_bytes = next.admin.max_body_bytes;
  config_.admin.request_timeout_ms = next.admin.request_timeout_ms;
  config_.allow_dangerous_commands = next.allow_dangerous_commands;
  router_->config_changed();
  // The log is reopened (logrotate renamed it), in the format and level asked.
  config_.log_level = next.log_level;
  config_.log_file = next.log_file;
  config_.log_format = next.log_format;
  setup_logging(config_);
  // Certificate files named by the same paths are read again.
  config_.tls.cert_file = next.tls.cert_file;
  config_.tls.key_file = next.tls.key_file;
  config_.tls.ca_file = next.tls.ca_file;
  config_.backend_tls.cert_file = next.backend_tls.cert_file;
  config_.backend_tls.key_file = next.backend_tls.key_file;
  config_.backend_tls.ca_file = next.backend_tls.ca_file;
  if (config_.tls.enabled || config_.backend_tls.enabled) reload_certificates();
  record_node_list();
  spdlog::info("reload: config {} reloaded ({} nodes, {} added{})", config_path_, nodes_.size(), added,
               kept.empty() ? "" : "; some settings need a restart: see above");
  return "";
}

}  // namespace headroom::proxy
