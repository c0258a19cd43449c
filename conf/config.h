// headroom's configuration: the YAML schema as a struct, loaded and validated by
// conf/config.cpp. Loading throws ConfigError (exceptions stay inside conf/ and
// startup); the message names the bad field, e.g. "nodes[2].address: expected host:port".
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace headroom::conf {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Endpoint {
  // An IP address literal in its one canonical spelling (no DNS on the loop;
  // "localhost" is accepted as 127.0.0.1), so equal addresses compare equal.
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:6380", "[::1]:6380": for errors and logs.
std::string to_string(const Endpoint& e);

struct BackendConfig {
  std::string name;        // unique, [A-Za-z0-9_-]+, used in errors, INFO and the directory
  Endpoint address;
  uint64_t capacity = 0;   // bytes; used when the node's maxmemory is 0. Accepts "512mb", "2gb", ...
  std::string password;    // optional: AUTH sent on connect
  bool drain = false;      // data nodes: takes no new keys, and the rebalancer empties it (docs/moves.md)
};

// The admin HTTP port (proxy/admin_http.h): off unless `admin` is in the config.
struct AdminConfig {
  bool enabled = false;
  Endpoint listen{"127.0.0.1", 9380};
  std::string token;                   // when set: required (Authorization: Bearer) for every POST
  uint64_t max_header_bytes = 8192;    // request line and headers; more: 431
  uint64_t max_body_bytes = 65536;     // more: 413
  uint32_t request_timeout_ms = 10000;  // a request not complete by then: 408
};

// The rebalancer (docs/moves.md): one at a time across every proxy (the coordinator).
struct RebalanceConfig {
  bool enabled = true;             // false: it moves keys only when asked (HEADROOM REBALANCE, DRAIN, MOVE)
  double threshold = 0.02;         // a node's fill this far above the mean (relative) is rebalanced
  uint32_t max_keys_per_s = 20000;
  uint64_t max_bytes_per_s = 64ull << 20;
  uint64_t max_key_bytes = 32ull << 20;  // larger keys are not moved (reported: one DUMP/RESTORE would block too long)
  bool colocate = false;  // a same-node command whose keys live apart moves them together, then runs
};

// TLS towards clients. Off unless the `tls` section is present.
struct TlsServerConfig {
  bool enabled = false;
  bool separate_port = false;  // tls.listen given: TLS there, plaintext stays on `listen`
  Endpoint listen;             // when separate_port
  std::string cert_file;       // PEM, may hold the chain
  std::string key_file;
  std::string ca_file;         // CA that client certificates must chain to
  enum class ClientAuth { kNo, kOptional, kYes } auth_clients = ClientAuth::kNo;
  std::string min_version = "1.2";  // "1.2" or "1.3"
};

// TLS towards the main server and the data nodes. Off unless `backend_tls` is present.
struct TlsClientConfig {
  bool enabled = false;
  std::string ca_file;      // servers' certificates are verified against it
  std::string cert_file;    // optional client certificate (servers with tls-auth-clients yes)
  std::string key_file;
  std::string server_name;  // SNI and the name checked; empty: the address's IP is checked
  bool verify = true;       // false: no certificate check (as redis-cli --insecure)
};

struct Config {
  Endpoint listen{"127.0.0.1", 6380};
  BackendConfig main;                  // the main server: directory and coordination state
  std::vector<BackendConfig> nodes;    // data nodes (at least one; names unique)

  uint32_t poll_interval_ms = 250;     // INFO memory polling period
  uint32_t backend_connections = 1;    // pipelined connections per data node

  // timeouts (0 = none)
  uint32_t connect_timeout_ms = 1000;
  uint32_t request_timeout_ms = 5000;
  uint32_t client_idle_timeout_s = 0;
  // TCP keepalive on every connection (clients, data nodes, the main server): the
  // first probe after this many idle seconds, then every third of it, three probes;
  // a peer that vanished without a FIN is found within about twice this. 0: off.
  uint32_t tcp_keepalive_s = 60;

  // limits
  uint32_t max_clients = 10000;
  uint64_t max_request_bytes = 512ull << 20;   // one request, all of it (Redis: client-query-buffer-limit 1gb)
  uint64_t max_bulk_bytes = 512ull << 20;      // one argument (Redis: proto-max-bulk-len)
  uint32_t max_args = 1024 * 1024;             // arguments in one request
  uint32_t max_pipeline = 100000;              // requests in flight per client before reading pauses
  uint64_t max_client_output_bytes = 256ull << 20;  // unsent replies per client before it is closed
  uint32_t max_backend_inflight = 100000;      // commands awaiting a node's reply before more are refused (0: no bound)
  uint32_t max_leases_per_node = 1000;         // connections leased to one client each (WATCH), per data node

  // The directory (docs/directory.md): how fast the coordinator's sweep checks
  // entries and keys, and how long a proxy's registration may go unrenewed before
  // the coordinator fences it.
  uint32_t sweep_keys_per_s = 1000;
  uint32_t proxy_lapse_ms = 5000;
  RebalanceConfig rebalance;
  AdminConfig admin;
  uint64_t slowlog_slower_than_us = 10000;  // SLOWLOG: requests slower than this, end to end (as Redis's default)
  uint32_t slowlog_max_len = 128;

  // Client authentication: when set, clients must AUTH with this password (or
  // "AUTH default <password>") before any other command, as with Redis's requirepass.
  std::string requirepass;

  // FLUSHALL, FLUSHDB and KEYS are refused unless named here.
  std::vector<std::string> allow_dangerous_commands;

  TlsServerConfig tls;
  TlsClientConfig backend_tls;

  std::string log_level = "info";      // trace, debug, info, warn, error, critical, off
  std::string log_file;                // empty: stderr
  std::string log_format = "text";     // text | json (one object a line)
};

// Parses and validates YAML text. Throws ConfigError naming the bad field.
Config parse_config(const std::string& yaml_text);

// Reads and parses a file. Throws ConfigError (also for an unreadable file).
Config load_config(const std::string& path);

// Parses "512mb", "2gb", "1000" (bytes), case-insensitively, as redis.conf does.
// Throws ConfigError mentioning `field` on a bad value.
uint64_t parse_size(const std::string& text, const std::string& field);

}  // namespace headroom::conf
