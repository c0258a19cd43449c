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
      {kBase + "allow_dangerous_commands: [flushall, config]\n", "allow_dangerous_commands[1]: expected one of"},
      {kBase + "allow_dangerous_commands: keys\n", "allow_dangerous_commands: expected a list"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.yaml);
    std::string err = error_of(c.yaml);
    CHECK_MESSAGE(err.find(c.error) != std::string::npos, err);
  }
}

TEST_CASE("sizes as redis.conf writes them") {
  CHECK(parse_size("512mb", "f") == 512ull << 20);
  CHECK(parse_size("2GB", "f") == 2ull << 30);
  CHECK(parse_size("1k", "f") == 1000);
  CHECK(parse_size("100", "f") == 100);
  CHECK_THROWS_AS(parse_size("", "f"), ConfigError);
  CHECK_THROWS_AS(parse_size("mb", "f"), ConfigError);
}

TEST_CASE("the shipped configs load") {
  for (const char* path : {"conf/headroom.yml", "conf/headroom-compose.yml"}) {
    CAPTURE(path);
    std::string full = std::string(HEADROOM_SOURCE_DIR) + "/" + path;
    Config c = load_config(full);
    CHECK(c.nodes.size() == 4);
  }
  CHECK_THROWS_AS(load_config("/nonexistent/headroom.yml"), ConfigError);
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
}
