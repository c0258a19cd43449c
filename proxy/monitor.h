// MONITOR, as Redis gives it, for the commands headroom receives: each client in
// monitor mode gets one line per command from any client,
//   +1700000000.123456 [0 127.0.0.1:52100] "SET" "k" "v"
// with arguments quoted as Redis quotes them and AUTH/HELLO arguments redacted.
// Refused unless allow_dangerous_commands names it (it shows every key and value).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace headroom::proxy {

// One monitor line for `argv` sent by the client at `peer`, at `unix_us` microseconds.
// `redact`: the arguments after the name are shown as "(redacted)" (passwords never
// reach a monitor: the command table marks AUTH and HELLO so, as Redis redacts them).
std::string monitor_line(uint64_t unix_us, std::string_view peer, std::span<const std::string_view> argv,
                         bool redact);

}  // namespace headroom::proxy
