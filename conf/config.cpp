#include "conf/config.h"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

namespace headroom::conf {

namespace {

[[noreturn]] void fail(const std::string& field, const std::string& msg) { throw ConfigError(field + ": " + msg); }

std::string scalar(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) fail(field, "expected a value");
  return n.Scalar();
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

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
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
  if (host == "localhost") host = "127.0.0.1";
  if (!is_ip_literal(host))
    fail(field, "\"" + host + "\" is not an IP address (headroom does no DNS lookups; use an IP)");
  uint32_t p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
    fail(field, "port must be 1 to 65535, got \"" + port + "\"");
  return Endpoint{host, static_cast<uint16_t>(p)};
}

void check_keys(const YAML::Node& map, const std::string& where, std::initializer_list<const char*> allowed) {
  if (!map.IsMap()) fail(where.empty() ? "config" : where, "expected a mapping");
  for (const auto& kv : map) {
    std::string k = kv.first.Scalar();
    bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; });
    if (!ok) fail(where.empty() ? k : where + "." + k, "unknown key \"" + k + "\"");
  }
}

BackendConfig parse_backend(const YAML::Node& n, const std::string& field) {
  check_keys(n, field, {"name", "address", "capacity", "password"});
  BackendConfig b;
  if (!n["name"]) fail(field + ".name", "missing");
  b.name = scalar(n["name"], field + ".name");
  if (b.name.empty() || !std::all_of(b.name.begin(), b.name.end(),
                                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }))
    fail(field + ".name", "use letters, digits, '_' and '-' only, got \"" + b.name + "\"");
  if (!n["address"]) fail(field + ".address", "missing");
  b.address = parse_endpoint(n["address"], field + ".address", false);
  if (n["capacity"]) b.capacity = parse_size(scalar(n["capacity"], field + ".capacity"), field + ".capacity");
  if (n["password"]) b.password = scalar(n["password"], field + ".password");
  return b;
}

}  // namespace

uint64_t parse_size(const std::string& text, const std::string& field) {
  std::string s;
  for (char c : text) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) fail(field, "expected a size like 512mb, got \"" + text + "\"");
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + digits, v);
  std::string unit = s.substr(digits);
  uint64_t mul = 1;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k") mul = 1000;
  else if (unit == "kb") mul = 1024;
  else if (unit == "m") mul = 1000 * 1000;
  else if (unit == "mb") mul = 1024 * 1024;
  else if (unit == "g") mul = 1000ull * 1000 * 1000;
  else if (unit == "gb") mul = 1024ull * 1024 * 1024;
  else fail(field, "unknown size unit \"" + unit + "\" (use b, kb, mb, gb)");
  if (v > UINT64_MAX / mul) fail(field, "size too large");
  return v * mul;
}

Config parse_config(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("not valid YAML: ") + e.what());
  }
  check_keys(root, "",
             {"listen", "main", "nodes", "poll_interval_ms", "backend_connections", "timeouts", "limits", "log",
              "requirepass", "allow_dangerous_commands"});
  Config c;
  if (root["listen"]) c.listen = parse_endpoint(root["listen"], "listen", true);
  if (!root["main"]) fail("main", "missing: the main server holds the directory");
  c.main = parse_backend(root["main"], "main");
  const YAML::Node& nodes = root["nodes"];
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0) fail("nodes", "expected a list of at least one data node");
  if (nodes.size() > 255) fail("nodes", "at most 255 data nodes");
  std::set<std::string> names{c.main.name};
  std::set<std::pair<std::string, uint16_t>> addrs{{c.main.address.host, c.main.address.port}};
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string field = "nodes[" + std::to_string(i) + "]";
    BackendConfig b = parse_backend(nodes[i], field);
    if (!names.insert(b.name).second) fail(field + ".name", "duplicate name \"" + b.name + "\"");
    if (!addrs.insert({b.address.host, b.address.port}).second)
      fail(field + ".address", "duplicate address " + b.address.host + ":" + std::to_string(b.address.port));
    c.nodes.push_back(std::move(b));
  }
  if (root["poll_interval_ms"]) c.poll_interval_ms = static_cast<uint32_t>(parse_u64(root["poll_interval_ms"], "poll_interval_ms", 10, 60000));
  if (root["backend_connections"])
    c.backend_connections = static_cast<uint32_t>(parse_u64(root["backend_connections"], "backend_connections", 1, 64));
  if (const auto& t = root["timeouts"]) {
    check_keys(t, "timeouts", {"connect_ms", "request_ms", "client_idle_s"});
    if (t["connect_ms"]) c.connect_timeout_ms = static_cast<uint32_t>(parse_u64(t["connect_ms"], "timeouts.connect_ms", 0, 3600000));
    if (t["request_ms"]) c.request_timeout_ms = static_cast<uint32_t>(parse_u64(t["request_ms"], "timeouts.request_ms", 0, 3600000));
    if (t["client_idle_s"]) c.client_idle_timeout_s = static_cast<uint32_t>(parse_u64(t["client_idle_s"], "timeouts.client_idle_s", 0, 86400 * 365));
  }
  if (const auto& l = root["limits"]) {
    check_keys(l, "limits", {"max_clients", "max_request_bytes", "max_bulk_bytes", "max_args", "max_pipeline",
                             "max_client_output_bytes", "max_backend_inflight"});
    if (l["max_clients"]) c.max_clients = static_cast<uint32_t>(parse_u64(l["max_clients"], "limits.max_clients", 1, 1000000));
    if (l["max_request_bytes"]) c.max_request_bytes = parse_size(scalar(l["max_request_bytes"], "limits.max_request_bytes"), "limits.max_request_bytes");
    if (l["max_bulk_bytes"]) c.max_bulk_bytes = parse_size(scalar(l["max_bulk_bytes"], "limits.max_bulk_bytes"), "limits.max_bulk_bytes");
    if (l["max_args"]) c.max_args = static_cast<uint32_t>(parse_u64(l["max_args"], "limits.max_args", 1, 0x7fffffff));
    if (l["max_pipeline"]) c.max_pipeline = static_cast<uint32_t>(parse_u64(l["max_pipeline"], "limits.max_pipeline", 1, 100000000));
    if (l["max_client_output_bytes"])
      c.max_client_output_bytes = parse_size(scalar(l["max_client_output_bytes"], "limits.max_client_output_bytes"), "limits.max_client_output_bytes");
    if (l["max_backend_inflight"])
      c.max_backend_inflight = static_cast<uint32_t>(parse_u64(l["max_backend_inflight"], "limits.max_backend_inflight", 0, 100000000));
    if (c.max_request_bytes < 1024) fail("limits.max_request_bytes", "must be at least 1kb");
    if (c.max_bulk_bytes < 1) fail("limits.max_bulk_bytes", "must be at least 1");
  }
  if (root["requirepass"]) c.requirepass = scalar(root["requirepass"], "requirepass");
  if (const auto& a = root["allow_dangerous_commands"]) {
    if (!a.IsSequence()) fail("allow_dangerous_commands", "expected a list, e.g. [flushall, keys]");
    static const std::set<std::string> dangerous{"flushall", "flushdb", "keys"};
    for (size_t i = 0; i < a.size(); ++i) {
      std::string field = "allow_dangerous_commands[" + std::to_string(i) + "]";
      std::string name = scalar(a[i], field);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (!dangerous.count(name)) fail(field, "expected one of flushall, flushdb, keys; got \"" + name + "\"");
      c.allow_dangerous_commands.push_back(name);
    }
  }
  if (const auto& lg = root["log"]) {
    check_keys(lg, "log", {"level", "file"});
    if (lg["level"]) {
      c.log_level = scalar(lg["level"], "log.level");
      static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
      if (!levels.count(c.log_level)) fail("log.level", "expected one of trace, debug, info, warn, error, critical, off; got \"" + c.log_level + "\"");
    }
    if (lg["file"]) c.log_file = scalar(lg["file"], "log.file");
  }
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw ConfigError("cannot read the file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str());
}

}  // namespace headroom::conf
