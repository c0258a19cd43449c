// MONITOR lines: Redis's format and quoting, passwords redacted.
#include <doctest/doctest.h>

#include <string_view>
#include <vector>

#include "proxy/monitor.h"
#include "resp/command_table.h"

using headroom::proxy::monitor_line;

namespace {
// As the server decides: the command table says whose arguments are redacted.
bool redacted(const std::vector<std::string_view>& argv) {
  const auto* cmd = headroom::resp::lookup_command(argv);
  return cmd != nullptr && cmd->has(headroom::resp::kRedactArgs);
}
}  // namespace

TEST_CASE("monitor lines: time, client, arguments quoted as Redis quotes them") {
  std::vector<std::string_view> set{"SET", "k", std::string_view("a\"b\\c\n\x01\xff", 8)};
  CHECK(monitor_line(1700000000000042, "127.0.0.1:5000", set, redacted(set)) ==
        "+1700000000.000042 [0 127.0.0.1:5000] \"SET\" \"k\" \"a\\\"b\\\\c\\n\\x01\\xff\"\r\n");
  std::vector<std::string_view> auth{"auth", "default", "s3cret"};
  CHECK(monitor_line(1, "[::1]:7", auth, redacted(auth)) == "+0.000001 [0 [::1]:7] \"auth\" \"(redacted)\" \"(redacted)\"\r\n");
  std::vector<std::string_view> hello{"HELLO", "2", "AUTH", "default", "pw"};
  CHECK(monitor_line(0, "x", hello, redacted(hello)).find("pw") == std::string::npos);
}
