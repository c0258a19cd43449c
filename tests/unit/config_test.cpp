// Config loading: good configs parse; every bad field is named in the error.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "conf/cli.h"
#include "conf/config.h"

using namespace headroom::conf;

namespace {
const std::string kBase =
    "main: {name: main, address: 127.0.0.1:5000}\n"
    "nodes:\n"
    "  - {name: node1, address: 127.0.0.1:5300}\n"
    "  - {name: node2, address: 'localhost:5400', capacity: 2gb}\n";

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a minimal config gets the defaults") {
  Config c = parse_config(kBase);
  CHECK(c.listen.host == "127.0.0.1");
  CHECK(c.listen.port == 6380);
  REQUIRE(c.nodes.size() == 2);
  CHECK(c.nodes[1].address.host == "127.0.0.1");
  CHECK(c.nodes[1].capacity == 2ull << 30);
  CHECK(c.poll_interval_ms == 250);
  CHECK(c.max_bulk_bytes == 512ull << 20);
}

TEST_CASE("every section parses") {
  Config c = parse_config(kBase +
                          "listen: 7000\n"
                          "poll_interval_ms: 100\n"
                          "backend_connections: 2\n"
                          "timeouts: {connect_ms: 10, request_ms: 20, client_idle_s: 30}\n"
                          "limits: {max_clients: 5, max_request_bytes: 1mb, max_bulk_bytes: 1kb, max_args: 9,"
                          " max_pipeline: 7, max_client_output_bytes: 100k, max_backend_inflight: 11}\n"
                          "log: {level: debug, file: /tmp/x.log}\n");
  CHECK(c.listen.port == 7000);
  CHECK(c.backend_connections == 2);
  CHECK(c.request_timeout_ms == 20);
  CHECK(c.client_idle_timeout_s == 30);
  CHECK(c.max_request_bytes == 1 << 20);
  CHECK(c.max_bulk_bytes == 1024);
  CHECK(c.max_client_output_bytes == 100000);
  CHECK(c.max_backend_inflight == 11);
  CHECK(c.log_level == "debug");
  Config d = parse_config(kBase + "requirepass: pw\nallow_dangerous_commands: [KEYS]\n");
  CHECK(d.requirepass == "pw");
  CHECK(d.allow_dangerous_commands == std::vector<std::string>{"keys"});
}

TEST_CASE("bad configs name the bad field") {
  struct Case {
    std::string yaml;
    std::string error;
  };
  std::vector<Case> cases = {
      {"nodes: []\nmain: {name: m, address: 127.0.0.1:1}\n", "nodes: expected a list"},
      {kBase + "pol_interval_ms: 5\n", "pol_interval_ms: unknown key"},
      {kBase + "poll_interval_ms: 5\n", "poll_interval_ms: must be between 10"},
      {kBase + "poll_interval_ms: fast\n", "poll_interval_ms: expected a whole number"},
      {kBase + "listen: example.com:80\n", "listen: \"example.com\" is not an IP address"},
      {kBase + "listen: 127.0.0.1:99999\n", "listen: port must be 1 to 65535"},
      {kBase + "  - {name: node1, address: 127.0.0.1:5999}\n", "nodes[2].name: duplicate name"},
      {kBase + "  - {name: node3, address: 127.0.0.1:5300}\n", "nodes[2].address: duplicate address"},
      {kBase + "  - {name: 'bad name', address: 127.0.0.1:1}\n", "nodes[2].name: use letters"},
      {kBase + "  - {name: n5, address: 127.0.0.1}\n", "nodes[2].address: expected host:port"},
      {kBase + "  - {name: n5, address: 127.0.0.1:1, capacity: 3tb}\n", "nodes[2].capacity: unknown size unit"},
      {kBase + "  - {name: n5, adress: 127.0.0.1:1}\n", "nodes[2].adress: unknown key"},
      {kBase + "timeouts: {request: 5}\n", "timeouts.request: unknown key"},
      {kBase + "limits: {max_bulk_bytes: lots}\n", "limits.max_bulk_bytes: expected a size"},
      {kBase + "log: {level: loud}\n", "log.level: expected one of"},
      {"nodes:\n  - {name: a, address: 127.0.0.1:1}\n", "main: missing"},
      {"main: [1, 2\n", "not valid YAML"},
      {kBase + "allow_dangerous_commands: [flushall, script]\n", "allow_dangerous_commands[1]: expected one of"},
      {kBase + "allow_dangerous_commands: keys\n", "allow_dangerous_commands: expected a list"},
      // A repeated key is a mistake yaml-cpp would hide (it keeps the first one).
      {kBase + "listen: 127.0.0.1:7000\nlisten: 127.0.0.1:7001\n", "listen: appears twice"},
      {kBase + "log: {level: info, level: debug}\n", "log.level: appears twice"},
      {kBase + "pol_interval_ms: 5\n", "(did you mean \"poll_interval_ms\"?)"},
      {kBase + "limits: {max_bulk_byte: 1mb}\n", "limits.max_bulk_byte: unknown key"},
      {kBase + "listen: 127.0.0.1:0\n", "listen: port must be 1 to 65535, got \"0\""},
      {kBase + "listen: 127.0.0.1:5300\n", "listen: same address as nodes[0]"},
      {kBase + "listen: ::1:6380\n", "listen: expected host:port"},
      {kBase + "  - {name: n5, address: 'x'}\n", "nodes[2].address: expected host:port, got \"x\""},
      {kBase + "  - {name: n5, address: 'redis.internal:6379'}\n", "nodes[2].address: \"redis.internal\" is not an IP"},
      {kBase + "  - {name: n5, address: 10.0.0.300:1}\n", "nodes[2].address: \"10.0.0.300\" is not an IP"},
      {kBase + "  - {name: n5, address: 127.0.0.1:5000}\n", "nodes[2].address: duplicate address"},  // main's
      {kBase + "  - {name: main, address: 127.0.0.1:1}\n", "nodes[2].name: duplicate name"},
      {kBase + "  - {name: n5, address: 127.0.0.1:1, capacity: 1.5gb}\n", "nodes[2].capacity: expected a size like 512mb"},
      {kBase + "  - {name: n5, address: 127.0.0.1:1, capacity: 99999999999999999999gb}\n", "nodes[2].capacity: size too large"},
      {kBase + "  - {name: " + std::string(65, 'n') + ", address: 127.0.0.1:1}\n", "nodes[2].name: at most 64"},
      {kBase + "  - {address: 127.0.0.1:1}\n", "nodes[2].name: missing"},
      {kBase + "  - node5\n", "nodes[2]: expected a mapping"},
      {kBase + "limits: {max_client_output_bytes: 0}\n", "limits.max_client_output_bytes: must be at least 1024"},
      {kBase + "limits: {max_request_bytes: 100}\n", "limits.max_request_bytes: must be at least 1024"},
      {kBase + "limits: {max_clients: -1}\n", "limits.max_clients: expected a whole number"},
      {kBase + "backend_connections: 0\n", "backend_connections: must be between 1 and 64"},
      {kBase + "timeouts: 5\n", "timeouts: expected a mapping"},
      {"main: {name: main, address: 127.0.0.1:5000}\n", "nodes: expected a list"},
      {"", "config: empty"},
      {"- a\n- b\n", "config: expected a mapping"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.yaml);
    std::string err = error_of(c.yaml);
    CHECK_MESSAGE(err.find(c.error) != std::string::npos, err);
  }
}

TEST_CASE("sizes as redis.conf writes them") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  // redis.conf: k/m/g are powers of 1000, kb/mb/gb powers of 1024, any case.
  for (const Case& c : std::vector<Case>{{"100", 100},
                                         {"100b", 100},
                                         {"1k", 1000},
                                         {"1kb", 1024},
                                         {"3m", 3000000},
                                         {"512mb", 512ull << 20},
                                         {"2g", 2000000000},
                                         {"2GB", 2ull << 30},
                                         {"0", 0},
                                         {"17179869183gb", 17179869183ull << 30}}) {
    CAPTURE(c.text);
    CHECK(parse_size(c.text, "f") == c.bytes);
  }
  for (const char* bad : {"", "mb", "-1", "1.5gb", "10 mb", "1tb", "12x", "17179869184gb",
                          "99999999999999999999999"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_size(bad, "f"), ConfigError);
  }
  CHECK(error_of(kBase + "limits: {max_bulk_bytes: 1tb}\n") ==
        "limits.max_bulk_bytes: unknown size unit \"tb\" (use b, kb, mb, gb)");
}

TEST_CASE("addresses are IP literals; localhost is 127.0.0.1") {
  Config c = parse_config(kBase + "listen: '[::1]:6390'\n");
  CHECK(c.listen.host == "::1");
  CHECK(c.listen.port == 6390);
  CHECK(parse_config(kBase + "listen: localhost:7\n").listen.host == "127.0.0.1");
  CHECK(parse_config(kBase + "listen: 0.0.0.0:6380\n").listen.host == "0.0.0.0");
  // localhost and 127.0.0.1 are one address, so this is a duplicate.
  CHECK(error_of(kBase + "  - {name: n5, address: 'localhost:5300'}\n") ==
        "nodes[2].address: duplicate address 127.0.0.1:5300");
}

TEST_CASE("addresses are compared as addresses, not as text") {
  const std::string v6 =
      "main: {name: main, address: '[::1]:5000'}\n"
      "nodes:\n"
      "  - {name: node1, address: '[::1]:5300'}\n";
  CHECK(error_of(v6 + "  - {name: node2, address: '[0:0:0:0:0:0:0:1]:5300'}\n") ==
        "nodes[1].address: duplicate address [::1]:5300");
  CHECK(error_of(v6 + "  - {name: node2, address: '[::0001]:5000'}\n") ==
        "nodes[1].address: duplicate address [::1]:5000");  // main's
  // An IPv4-mapped IPv6 address is the IPv4 address.
  CHECK(error_of(kBase + "  - {name: n5, address: '[::ffff:127.0.0.1]:5300'}\n") ==
        "nodes[2].address: duplicate address 127.0.0.1:5300");
  // Hosts are kept in one spelling: what logs and INFO show.
  CHECK(parse_config(kBase + "listen: '[0:0:0:0:0:0:0:1]:6390'\n").listen.host == "::1");
}

TEST_CASE("empty optional values mean none; log levels in any case") {
  Config c = parse_config(kBase + "requirepass:\nlog: {level: WARNING, file: ~}\n");
  CHECK(c.requirepass.empty());
  CHECK(c.log_file.empty());
  CHECK(c.log_level == "warn");
  CHECK(parse_config(kBase + "log: {level: Error}\n").log_level == "error");
  CHECK(parse_config(kBase + "limits: {max_backend_inflight: 0}\n").max_backend_inflight == 0);
  // A password YAML reads as a number is still text.
  Config p = parse_config("main: {name: main, address: 127.0.0.1:5000, password: 0123}\n"
                          "nodes: [{name: n, address: 127.0.0.1:5300, password: ''}]\n");
  CHECK(p.main.password == "0123");
  CHECK(p.nodes[0].password.empty());
}

TEST_CASE("the shipped configs load") {
  for (const char* path : {"conf/headroom.yml", "conf/headroom-compose.yml", "conf/headroom-sidecar.yml"}) {
    CAPTURE(path);
    std::string full = std::string(HEADROOM_SOURCE_DIR) + "/" + path;
    Config c = load_config(full);
    CHECK(c.nodes.size() == 4);
  }
  CHECK_THROWS_WITH_AS(load_config("/nonexistent/headroom.yml"), "cannot read the file: No such file or directory",
                       ConfigError);
  CHECK_THROWS_WITH_AS(load_config(HEADROOM_SOURCE_DIR), "is a directory, not a configuration file", ConfigError);
}

TEST_CASE("the shipped default is the embedded default") {
  Config c = load_config(std::string(HEADROOM_SOURCE_DIR) + "/conf/headroom.yml");
  CHECK(c.listen.host == "127.0.0.1");
  CHECK(c.listen.port == 6380);
  CHECK(c.main.address.port == 5000);
  std::vector<uint16_t> ports;
  for (const auto& n : c.nodes) ports.push_back(n.address.port);
  CHECK(ports == std::vector<uint16_t>{5300, 5400, 5500, 5600});
}

TEST_CASE("command-line flags") {
  auto parse = [](std::vector<const char*> args) {
    args.insert(args.begin(), "headroom");
    return parse_cli(static_cast<int>(args.size()), const_cast<char**>(args.data()));
  };
  CHECK(parse({"-c", "x.yml", "-t"}).config_path == "x.yml");
  CHECK(parse({"-c", "x.yml", "-t"}).test_config);
  CHECK(parse({"--version"}).version);
  CHECK(parse({"--help"}).help);
  CHECK(parse({"-c"}).error == "-c needs a file name");
  CHECK(parse({"--nope"}).error == "unknown option '--nope'");
  CHECK(parse({"--config=y.yml"}).config_path == "y.yml");
  CHECK(parse({"--test-config"}).test_config);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"-v"}).version);
  CHECK(parse({}).config_path == "conf/headroom.yml");
  CHECK(parse({"extra.yml"}).error == "unknown option 'extra.yml'");
  CHECK(usage_text().find("--test-config") != std::string::npos);
}

TEST_CASE("tls and backend_tls") {
  // Any readable file does for the config; the certificates themselves are loaded
  // (and their errors reported) by make_tls_contexts, covered by tests/integration/test_tls.py.
  const std::string f = std::string(HEADROOM_SOURCE_DIR) + "/README.md";
  const std::string tls = "tls: {cert_file: " + f + ", key_file: " + f;

  Config off = parse_config(kBase);
  CHECK_FALSE(off.tls.enabled);
  CHECK_FALSE(off.backend_tls.enabled);

  Config on = parse_config(kBase + tls + "}\n");
  CHECK(on.tls.enabled);
  CHECK_FALSE(on.tls.separate_port);  // TLS on `listen` itself
  CHECK(on.tls.auth_clients == TlsServerConfig::ClientAuth::kNo);
  CHECK(on.tls.min_version == "1.2");

  Config both = parse_config(kBase + tls + ", listen: 6390, auth_clients: optional, ca_file: " + f +
                             ", min_version: '1.3'}\nbackend_tls: {verify: false}\n");
  CHECK(both.tls.separate_port);
  CHECK(both.tls.listen.port == 6390);
  CHECK(both.tls.auth_clients == TlsServerConfig::ClientAuth::kOptional);
  CHECK(both.tls.min_version == "1.3");
  CHECK(both.backend_tls.enabled);
  CHECK_FALSE(both.backend_tls.verify);

  CHECK(parse_config(kBase + "backend_tls:\n").backend_tls.verify);  // present and empty: on, verified
  CHECK(parse_config(kBase + tls + ", auth_clients: yes, ca_file: " + f + "}\n").tls.auth_clients ==
        TlsServerConfig::ClientAuth::kYes);

  CHECK(error_of(kBase + "tls: {key_file: " + f + "}\n").find("tls.cert_file: missing") == 0);
  CHECK(error_of(kBase + tls + ", auth_clients: yes}\n").find("tls.ca_file: missing") == 0);
  CHECK(error_of(kBase + tls + ", auth_clients: maybe}\n").find("tls.auth_clients") == 0);
  CHECK(error_of(kBase + tls + ", min_version: '1.1'}\n").find("tls.min_version") == 0);
  CHECK(error_of(kBase + "tls: {cert_file: /nonexistent/x.crt, key_file: " + f + "}\n")
            .find("tls.cert_file: cannot read \"/nonexistent/x.crt\"") == 0);
  CHECK(error_of(kBase + tls + ", listen: 127.0.0.1:6380}\n").find("tls.listen: same address as listen") == 0);
  CHECK(error_of(kBase + tls + ", listen: 127.0.0.1:5300}\n").find("tls.listen: same address as nodes[0]") == 0);
  CHECK(error_of(kBase + "backend_tls: {cert_file: " + f + "}\n").find("backend_tls.key_file: missing") == 0);
  CHECK(error_of(kBase + "backend_tls: {verify: sometimes}\n").find("backend_tls.verify") == 0);
  CHECK(error_of(kBase + "backend_tls: {ca_fle: x}\n").find("did you mean \"ca_file\"") != std::string::npos);
}

TEST_CASE("rebalance and drain: defaults, values, and bad ones named") {
  Config d = parse_config(kBase);
  CHECK(d.rebalance.enabled);
  CHECK(d.rebalance.threshold == doctest::Approx(0.02));
  CHECK(d.rebalance.max_key_bytes == 32ull << 20);
  CHECK_FALSE(d.nodes[0].drain);
  Config c = parse_config(
      "main: {name: main, address: 127.0.0.1:5000}\n"
      "nodes:\n"
      "  - {name: node1, address: 127.0.0.1:5300, drain: true}\n"
      "  - {name: node2, address: 127.0.0.1:5400}\n"
      "rebalance: {enabled: false, threshold: 0.1, max_keys_per_s: 500, max_bytes_per_s: 10mb, max_key_bytes: 1mb}\n");
  CHECK(c.nodes[0].drain);
  CHECK_FALSE(c.rebalance.enabled);
  CHECK(c.rebalance.threshold == doctest::Approx(0.1));
  CHECK(c.rebalance.max_keys_per_s == 500);
  CHECK(c.rebalance.max_bytes_per_s == 10ull << 20);
  CHECK(c.rebalance.max_key_bytes == 1ull << 20);
  CHECK(error_of(kBase + "rebalance: {threshold: 0}\n").find("rebalance.threshold") != std::string::npos);
  CHECK(error_of(kBase + "rebalance: {threshold: lots}\n").find("rebalance.threshold") != std::string::npos);
  CHECK(error_of(kBase + "rebalance: {speed: 1}\n").find("unknown key \"speed\"") != std::string::npos);
  CHECK(error_of("main: {name: main, address: 127.0.0.1:5000, drain: true}\nnodes:\n"
                 "  - {name: node1, address: 127.0.0.1:5300}\n")
            .find("main.drain: unknown key \"drain\"") != std::string::npos);
}

TEST_CASE("admin: off unless present; its fields, and bad ones named") {
  CHECK_FALSE(parse_config(kBase).admin.enabled);
  Config c = parse_config(kBase + "admin: {listen: 9400, token: t0k, max_header_bytes: 4kb, request_timeout_ms: 500}\n");
  CHECK(c.admin.enabled);
  CHECK(c.admin.listen.host == "127.0.0.1");
  CHECK(c.admin.listen.port == 9400);
  CHECK(c.admin.token == "t0k");
  CHECK(c.admin.max_header_bytes == 4096);
  CHECK(c.admin.max_body_bytes == 65536);
  CHECK(c.admin.request_timeout_ms == 500);
  CHECK(error_of(kBase + "admin: {listen: nowhere}\n").find("admin.listen") != std::string::npos);
  CHECK(error_of(kBase + "admin: {request_timeout_ms: 5}\n").find("admin.request_timeout_ms") != std::string::npos);
  CHECK(error_of(kBase + "admin: {tokn: x}\n").find("did you mean \"token\"") != std::string::npos);
}
