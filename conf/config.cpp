#include "conf/config.h"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace headroom::conf {

namespace {

// Node names are stored in the directory once per key, so they stay short.
constexpr size_t kMaxNameLength = 64;

[[noreturn]] void fail(const std::string& field, const std::string& msg) { throw ConfigError(field + ": " + msg); }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string scalar(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) fail(field, "expected a value");
  return n.Scalar();
}

// Optional text (passwords, file names): an empty YAML value (`file:` or `file: ~`)
// means "none" rather than an error, which is what people who write it mean.
std::string optional_text(const YAML::Node& n, const std::string& field) {
  if (n.IsNull()) return "";
  return scalar(n, field);
}

uint64_t parse_u64(const YAML::Node& n, const std::string& field, uint64_t min, uint64_t max) {
  std::string s = scalar(n, field);
  uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) fail(field, "expected a whole number, got \"" + s + "\"");
  if (v < min || v > max)
    fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + s);
  return v;
}

uint32_t parse_u32(const YAML::Node& n, const std::string& field, uint32_t min, uint32_t max) {
  return static_cast<uint32_t>(parse_u64(n, field, min, max));
}

uint64_t parse_size_node(const YAML::Node& n, const std::string& field, uint64_t min) {
  uint64_t v = parse_size(scalar(n, field), field);
  if (v < min) fail(field, "must be at least " + std::to_string(min) + " bytes");
  return v;
}

// The one spelling of an IP literal (inet_ntop's), so that addresses compare as
// addresses: "0:0:0:0:0:0:0:1" is "::1", and an IPv4-mapped IPv6 address is the IPv4
// address. Returns false when `host` is not an IP literal.
bool canonical_ip(const std::string& host, std::string& out) {
  unsigned char buf[sizeof(in6_addr)];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    out = inet_ntop(AF_INET, buf, text, sizeof text);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), buf) != 1) return false;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(buf, kMapped, sizeof kMapped) == 0) out = inet_ntop(AF_INET, buf + 12, text, sizeof text);
  else out = inet_ntop(AF_INET6, buf, text, sizeof text);
  return true;
}

// "host:port", "[v6]:port" or a bare port (listen only). No DNS: addresses are IP
// literals ("localhost" means 127.0.0.1), so nothing blocks the loop.
Endpoint parse_endpoint(const YAML::Node& n, const std::string& field, bool bare_port_ok) {
  std::string s = scalar(n, field);
  std::string host, port;
  if (bare_port_ok && !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
    host = "127.0.0.1";
    port = s;
  } else if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      fail(field, "expected [ipv6]:port, got \"" + s + "\"");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon) fail(field, "expected host:port, got \"" + s + "\"");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) fail(field, "expected host:port, got \"" + s + "\"");
  if (host == "localhost") host = "127.0.0.1";
  std::string canonical;
  if (!canonical_ip(host, canonical))
    fail(field, "\"" + host + "\" is not an IP address (headroom does no DNS lookups; use an IP)");
  host = canonical;
  uint32_t p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
    fail(field, "port must be 1 to 65535, got \"" + port + "\"");
  return Endpoint{host, static_cast<uint16_t>(p)};
}

// Edit distance, to suggest the key a typo meant.
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// A mapping whose keys are all in `allowed`, each once. Unknown and repeated keys are
// errors, not warnings: yaml-cpp would otherwise keep the first of two `listen:` lines
// and ignore a misspelt key, and the operator would never learn their setting is unused.
void check_keys(const YAML::Node& map, const std::string& where, std::initializer_list<const char*> allowed) {
  const std::string here = where.empty() ? "config" : where;
  if (!map.IsMap()) fail(here, "expected a mapping");
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) fail(here, "keys must be plain names");
    std::string k = kv.first.Scalar();
    std::string field = where.empty() ? k : where + "." + k;
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) {
      std::string msg = "unknown key \"" + k + "\"";
      const char* best = nullptr;
      size_t best_d = 3;  // more than two edits away is not a typo of it
      for (const char* a : allowed) {
        size_t d = distance(k, a);
        if (d < best_d) best = a, best_d = d;
      }
      if (best) msg += " (did you mean \"" + std::string(best) + "\"?)";
      fail(field, msg);
    }
    if (!seen.insert(k).second) fail(field, "appears twice");
  }
}

bool parse_bool(const YAML::Node& n, const std::string& field) {
  std::string v = lower(scalar(n, field));
  if (v == "true" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "no" || v == "off") return false;
  fail(field, "expected true or false, got \"" + v + "\"");
}

BackendConfig parse_backend(const YAML::Node& n, const std::string& field, bool data_node = false) {
  if (data_node) check_keys(n, field, {"name", "address", "capacity", "password", "drain"});
  else check_keys(n, field, {"name", "address", "capacity", "password"});
  BackendConfig b;
  if (!n["name"]) fail(field + ".name", "missing");
  b.name = scalar(n["name"], field + ".name");
  if (b.name.empty() || !std::all_of(b.name.begin(), b.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      }))
    fail(field + ".name", "use letters, digits, '_' and '-' only, got \"" + b.name + "\"");
  if (b.name.size() > kMaxNameLength)
    fail(field + ".name", "at most " + std::to_string(kMaxNameLength) + " characters (it is stored with every key)");
  if (!n["address"]) fail(field + ".address", "missing");
  b.address = parse_endpoint(n["address"], field + ".address", false);
  if (n["capacity"]) b.capacity = parse_size_node(n["capacity"], field + ".capacity", 0);
  if (n["password"]) b.password = optional_text(n["password"], field + ".password");
  if (n["drain"]) b.drain = parse_bool(n["drain"], field + ".drain");
  return b;
}

void parse_nodes(const YAML::Node& nodes, Config& c) {
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0) fail("nodes", "expected a list of at least one data node");
  if (nodes.size() > 255) fail("nodes", "at most 255 data nodes");
  // The main server is in both sets: a data node that is also the main server would
  // mix the directory with data, and one name would mean two things.
  std::set<std::string> names{c.main.name};
  std::set<std::pair<std::string, uint16_t>> addrs{{c.main.address.host, c.main.address.port}};
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string field = "nodes[" + std::to_string(i) + "]";
    BackendConfig b = parse_backend(nodes[i], field, true);
    if (!names.insert(b.name).second) fail(field + ".name", "duplicate name \"" + b.name + "\"");
    if (!addrs.insert({b.address.host, b.address.port}).second)
      fail(field + ".address", "duplicate address " + to_string(b.address));
    c.nodes.push_back(std::move(b));
  }
}

void parse_timeouts(const YAML::Node& t, Config& c) {
  check_keys(t, "timeouts", {"connect_ms", "request_ms", "client_idle_s", "tcp_keepalive_s"});
  if (t["connect_ms"]) c.connect_timeout_ms = parse_u32(t["connect_ms"], "timeouts.connect_ms", 0, 3600000);
  if (t["request_ms"]) c.request_timeout_ms = parse_u32(t["request_ms"], "timeouts.request_ms", 0, 3600000);
  if (t["client_idle_s"]) c.client_idle_timeout_s = parse_u32(t["client_idle_s"], "timeouts.client_idle_s", 0, 86400 * 365);
  if (t["tcp_keepalive_s"]) c.tcp_keepalive_s = parse_u32(t["tcp_keepalive_s"], "timeouts.tcp_keepalive_s", 0, 86400);
}

void parse_limits(const YAML::Node& l, Config& c) {
  check_keys(l, "limits", {"max_clients", "max_request_bytes", "max_bulk_bytes", "max_args", "max_pipeline",
                           "max_client_output_bytes", "max_backend_inflight", "max_leases_per_node"});
  if (l["max_clients"]) c.max_clients = parse_u32(l["max_clients"], "limits.max_clients", 1, 1000000);
  // Below 1kb a request could not even carry a short SET; below that is a unit mistake.
  if (l["max_request_bytes"]) c.max_request_bytes = parse_size_node(l["max_request_bytes"], "limits.max_request_bytes", 1024);
  if (l["max_bulk_bytes"]) c.max_bulk_bytes = parse_size_node(l["max_bulk_bytes"], "limits.max_bulk_bytes", 1);
  if (l["max_args"]) c.max_args = parse_u32(l["max_args"], "limits.max_args", 1, 0x7fffffff);
  if (l["max_pipeline"]) c.max_pipeline = parse_u32(l["max_pipeline"], "limits.max_pipeline", 1, 100000000);
  // 0 is not "unlimited" here: a client is closed as soon as its output exceeds the
  // limit, so 0 would close every client at its first reply.
  if (l["max_client_output_bytes"])
    c.max_client_output_bytes = parse_size_node(l["max_client_output_bytes"], "limits.max_client_output_bytes", 1024);
  if (l["max_backend_inflight"])
    c.max_backend_inflight = parse_u32(l["max_backend_inflight"], "limits.max_backend_inflight", 0, 100000000);
  if (l["max_leases_per_node"])
    c.max_leases_per_node = parse_u32(l["max_leases_per_node"], "limits.max_leases_per_node", 1, 1000000);
}

void parse_directory(const YAML::Node& d, Config& c) {
  check_keys(d, "directory", {"sweep_keys_per_s", "proxy_lapse_ms"});
  if (d["sweep_keys_per_s"])
    c.sweep_keys_per_s = parse_u32(d["sweep_keys_per_s"], "directory.sweep_keys_per_s", 10, 10000000);
  // Below a second a proxy busy for a moment would be fenced; heartbeats go every 200 ms.
  if (d["proxy_lapse_ms"]) c.proxy_lapse_ms = parse_u32(d["proxy_lapse_ms"], "directory.proxy_lapse_ms", 1000, 3600000);
}

void parse_rebalance(const YAML::Node& r, Config& c) {
  check_keys(r, "rebalance", {"enabled", "threshold", "max_keys_per_s", "max_bytes_per_s", "max_key_bytes", "colocate"});
  if (r["colocate"]) c.rebalance.colocate = parse_bool(r["colocate"], "rebalance.colocate");
  auto& b = c.rebalance;
  if (r["enabled"]) b.enabled = parse_bool(r["enabled"], "rebalance.enabled");
  if (r["threshold"]) {
    double t = 0;
    try {
      t = r["threshold"].as<double>();
    } catch (const YAML::Exception&) {
      fail("rebalance.threshold", "expected a number, e.g. 0.05");
    }
    if (!(t >= 0.001 && t <= 10)) fail("rebalance.threshold", "expected 0.001 to 10 (0.05: 5% above the mean fill)");
    b.threshold = t;
  }
  if (r["max_keys_per_s"]) b.max_keys_per_s = parse_u32(r["max_keys_per_s"], "rebalance.max_keys_per_s", 1, 10000000);
  if (r["max_bytes_per_s"]) b.max_bytes_per_s = parse_size_node(r["max_bytes_per_s"], "rebalance.max_bytes_per_s", 1024);
  if (r["max_key_bytes"]) b.max_key_bytes = parse_size_node(r["max_key_bytes"], "rebalance.max_key_bytes", 1024);
}

void parse_admin(const YAML::Node& a, Config& c) {
  check_keys(a, "admin", {"listen", "token", "max_header_bytes", "max_body_bytes", "request_timeout_ms"});
  auto& ad = c.admin;
  ad.enabled = true;
  if (a["listen"]) ad.listen = parse_endpoint(a["listen"], "admin.listen", true);
  if (a["token"]) ad.token = optional_text(a["token"], "admin.token");
  if (a["max_header_bytes"]) ad.max_header_bytes = parse_size_node(a["max_header_bytes"], "admin.max_header_bytes", 256);
  if (a["max_body_bytes"]) ad.max_body_bytes = parse_size_node(a["max_body_bytes"], "admin.max_body_bytes", 0);
  if (a["request_timeout_ms"])
    ad.request_timeout_ms = parse_u32(a["request_timeout_ms"], "admin.request_timeout_ms", 100, 3600000);
}

void parse_slowlog(const YAML::Node& s, Config& c) {
  check_keys(s, "slowlog", {"slower_than_us", "max_len"});
  if (s["slower_than_us"]) c.slowlog_slower_than_us = parse_u32(s["slower_than_us"], "slowlog.slower_than_us", 0, 0x7fffffff);
  if (s["max_len"]) c.slowlog_max_len = parse_u32(s["max_len"], "slowlog.max_len", 0, 1000000);
}

void parse_dangerous(const YAML::Node& a, Config& c) {
  if (!a.IsSequence()) fail("allow_dangerous_commands", "expected a list, e.g. [flushall, keys]");
  static const std::set<std::string> dangerous{"flushall", "flushdb", "keys", "config", "debug", "shutdown", "monitor"};
  for (size_t i = 0; i < a.size(); ++i) {
    std::string field = "allow_dangerous_commands[" + std::to_string(i) + "]";
    std::string name = lower(scalar(a[i], field));
    if (!dangerous.count(name))
      fail(field, "expected one of flushall, flushdb, keys, config, debug, shutdown, monitor; got \"" + name + "\"");
    c.allow_dangerous_commands.push_back(name);
  }
}

void parse_log(const YAML::Node& lg, Config& c) {
  check_keys(lg, "log", {"level", "file", "format"});
  if (lg["format"]) {
    c.log_format = lower(scalar(lg["format"], "log.format"));
    if (c.log_format != "text" && c.log_format != "json")
      fail("log.format", "expected text or json, got \"" + c.log_format + "\"");
  }
  if (lg["level"]) {
    // Case-insensitive, and "warning" as spdlog and syslog spell it; stored in the
    // spelling spdlog::level::from_str takes.
    std::string level = lower(scalar(lg["level"], "log.level"));
    if (level == "warning") level = "warn";
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!levels.count(level))
      fail("log.level", "expected one of trace, debug, info, warn, error, critical, off; got \"" + level + "\"");
    c.log_level = level;
  }
  if (lg["file"]) c.log_file = optional_text(lg["file"], "log.file");
}


// A file named in the config must be readable now: finding out at the first TLS
// handshake would turn a typo into a proxy that rejects every client.
std::string readable_file(const YAML::Node& n, const std::string& field) {
  std::string path = optional_text(n, field);
  if (path.empty()) return path;
  std::ifstream f(path);
  if (!f) fail(field, "cannot read \"" + path + "\": " + std::strerror(errno));
  return path;
}

void parse_tls(const YAML::Node& t, Config& c) {
  check_keys(t, "tls", {"listen", "cert_file", "key_file", "ca_file", "auth_clients", "min_version"});
  TlsServerConfig& s = c.tls;
  s.enabled = true;
  if (t["listen"]) {
    s.separate_port = true;
    s.listen = parse_endpoint(t["listen"], "tls.listen", true);
  }
  if (t["cert_file"]) s.cert_file = readable_file(t["cert_file"], "tls.cert_file");
  if (t["key_file"]) s.key_file = readable_file(t["key_file"], "tls.key_file");
  if (t["ca_file"]) s.ca_file = readable_file(t["ca_file"], "tls.ca_file");
  if (s.cert_file.empty()) fail("tls.cert_file", "missing: clients need the server's certificate");
  if (s.key_file.empty()) fail("tls.key_file", "missing: the certificate's private key");
  if (t["auth_clients"]) {
    // YAML reads a bare no/yes as booleans' spellings; all of them are accepted.
    std::string v = lower(scalar(t["auth_clients"], "tls.auth_clients"));
    if (v == "no" || v == "false" || v == "off") s.auth_clients = TlsServerConfig::ClientAuth::kNo;
    else if (v == "optional") s.auth_clients = TlsServerConfig::ClientAuth::kOptional;
    else if (v == "yes" || v == "true" || v == "on") s.auth_clients = TlsServerConfig::ClientAuth::kYes;
    else fail("tls.auth_clients", "expected no, optional or yes; got \"" + v + "\"");
  }
  if (s.auth_clients != TlsServerConfig::ClientAuth::kNo && s.ca_file.empty())
    fail("tls.ca_file", "missing: auth_clients needs the CA that client certificates chain to");
  if (t["min_version"]) {
    s.min_version = scalar(t["min_version"], "tls.min_version");
    if (s.min_version != "1.2" && s.min_version != "1.3")
      fail("tls.min_version", "expected \"1.2\" or \"1.3\", got \"" + s.min_version + "\"");
  }
}

void parse_backend_tls(const YAML::Node& t, Config& c) {
  TlsClientConfig& b = c.backend_tls;
  b.enabled = true;
  if (t.IsNull()) return;  // `backend_tls:` alone: system CAs, verification on
  check_keys(t, "backend_tls", {"ca_file", "cert_file", "key_file", "server_name", "verify"});
  if (t["ca_file"]) b.ca_file = readable_file(t["ca_file"], "backend_tls.ca_file");
  if (t["cert_file"]) b.cert_file = readable_file(t["cert_file"], "backend_tls.cert_file");
  if (t["key_file"]) b.key_file = readable_file(t["key_file"], "backend_tls.key_file");
  if (t["server_name"]) b.server_name = optional_text(t["server_name"], "backend_tls.server_name");
  if (t["verify"]) b.verify = parse_bool(t["verify"], "backend_tls.verify");
  if (b.cert_file.empty() != b.key_file.empty())
    fail(b.cert_file.empty() ? "backend_tls.cert_file" : "backend_tls.key_file",
         "missing: a client certificate needs both cert_file and key_file");
}

}  // namespace

std::string to_string(const Endpoint& e) {
  bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

uint64_t parse_size(const std::string& text, const std::string& field) {
  std::string s = lower(text);
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  std::string unit = s.substr(digits);
  bool unit_is_letters = std::all_of(unit.begin(), unit.end(), [](char c) { return c >= 'a' && c <= 'z'; });
  // "1.5gb", "-1", "10 mb": say what a size looks like rather than blame the unit.
  if (digits == 0 || !unit_is_letters) fail(field, "expected a size like 512mb (whole number, then b, kb, mb or gb), got \"" + text + "\"");
  uint64_t mul = 1;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k") mul = 1000;
  else if (unit == "kb") mul = 1024;
  else if (unit == "m") mul = 1000 * 1000;
  else if (unit == "mb") mul = 1024 * 1024;
  else if (unit == "g") mul = 1000ull * 1000 * 1000;
  else if (unit == "gb") mul = 1024ull * 1024 * 1024;
  else fail(field, "unknown size unit \"" + unit + "\" (use b, kb, mb, gb)");
  uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + digits, v);
  if (r.ec != std::errc() || v > UINT64_MAX / mul) fail(field, "size too large: \"" + text + "\"");
  return v * mul;
}

Config parse_config(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("not valid YAML: ") + e.what());
  }
  if (root.IsNull()) fail("config", "empty: it needs at least main and nodes");
  check_keys(root, "",
             {"listen", "main", "nodes", "poll_interval_ms", "backend_connections", "timeouts", "limits", "log",
              "requirepass", "allow_dangerous_commands", "tls", "backend_tls", "directory", "rebalance", "admin",
              "slowlog"});
  Config c;
  if (root["listen"]) c.listen = parse_endpoint(root["listen"], "listen", true);
  if (!root["main"]) fail("main", "missing: the main server holds the directory");
  c.main = parse_backend(root["main"], "main");
  parse_nodes(root["nodes"], c);
  // headroom listening on a backend's address would forward to itself (or fail to
  // bind, with a less helpful message).
  if (const auto& t = root["tls"]) parse_tls(t, c);
  if (root["backend_tls"]) parse_backend_tls(root["backend_tls"], c);
  std::vector<std::pair<std::string, Endpoint>> listeners{{"listen", c.listen}};
  if (c.tls.separate_port) listeners.push_back({"tls.listen", c.tls.listen});
  for (const auto& [field, l] : listeners) {
    auto same = [&](const Endpoint& e) { return e.host == l.host && e.port == l.port; };
    if (same(c.main.address)) fail(field, "same address as main (" + to_string(l) + ")");
    for (size_t i = 0; i < c.nodes.size(); ++i)
      if (same(c.nodes[i].address))
        fail(field, "same address as nodes[" + std::to_string(i) + "] (" + to_string(l) + ")");
  }
  if (c.tls.separate_port && c.tls.listen.host == c.listen.host && c.tls.listen.port == c.listen.port)
    fail("tls.listen", "same address as listen; leave tls.listen out to serve TLS on the listen port");

  if (root["poll_interval_ms"]) c.poll_interval_ms = parse_u32(root["poll_interval_ms"], "poll_interval_ms", 10, 60000);
  if (root["backend_connections"]) c.backend_connections = parse_u32(root["backend_connections"], "backend_connections", 1, 64);
  if (const auto& t = root["timeouts"]) parse_timeouts(t, c);
  if (const auto& l = root["limits"]) parse_limits(l, c);
  if (root["requirepass"]) c.requirepass = optional_text(root["requirepass"], "requirepass");
  if (const auto& a = root["allow_dangerous_commands"]) parse_dangerous(a, c);
  if (const auto& lg = root["log"]) parse_log(lg, c);
  if (const auto& d = root["directory"]) parse_directory(d, c);
  if (const auto& r = root["rebalance"]) parse_rebalance(r, c);
  if (const auto& a = root["admin"]) parse_admin(a, c);
  if (const auto& s = root["slowlog"]) parse_slowlog(s, c);
  if (c.admin.enabled && to_string(c.admin.listen) == to_string(c.listen))
    fail("admin.listen", "the same address as listen: give the admin port its own");
  return c;
}

Config load_config(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError("is a directory, not a configuration file");
  std::ifstream f(path);
  if (!f) throw ConfigError(std::string("cannot read the file: ") + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str());
}

}  // namespace headroom::conf
