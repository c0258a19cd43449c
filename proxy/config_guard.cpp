#include "proxy/config_guard.h"

#include <array>

#include "resp/ascii.h"

namespace headroom::proxy {

namespace {
constexpr std::array<std::string_view, 26> kOwned = {
    "requirepass", "masterauth", "masteruser", "port", "bind", "bind-source-addr", "unixsocket",
    "unixsocketperm", "dir", "dbfilename", "appenddirname", "appendfilename", "logfile", "pidfile",
    "replicaof", "slaveof", "notify-keyspace-events", "aclfile", "enable-debug-command",
    "enable-protected-configs", "enable-module-command", "protected-mode", "daemonize", "supervised",
    "rename-command", "replica-announce-ip"};
constexpr std::array<std::string_view, 2> kOwnedPrefixes = {"tls-", "cluster-"};
}  // namespace

std::string_view owned_config_parameter(std::span<const std::string_view> argv) {
  for (size_t i = 2; i < argv.size(); i += 2) {
    const std::string_view name = argv[i];
    for (auto o : kOwned)
      if (resp::iequals(name, o)) return name;
    for (auto p : kOwnedPrefixes)
      if (name.size() >= p.size() && resp::iequals(name.substr(0, p.size()), p)) return name;
  }
  return {};
}

}  // namespace headroom::proxy
