#include "proxy/monitor.h"

#include <cstdio>


namespace headroom::proxy {

namespace {

// As Redis's sdscatrepr: printable bytes as they are, the usual escapes, \xHH for the rest.
void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\a': out += "\\a"; break;
      case '\b': out += "\\b"; break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          char hex[5];
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          out += hex;
        }
    }
  }
  out += '"';
}

}  // namespace

std::string monitor_line(uint64_t unix_us, std::string_view peer, std::span<const std::string_view> argv,
                         bool redact) {
  char head[64];
  int n = std::snprintf(head, sizeof head, "+%llu.%06llu [0 ", static_cast<unsigned long long>(unix_us / 1000000),
                        static_cast<unsigned long long>(unix_us % 1000000));
  std::string out(head, static_cast<size_t>(n));
  out += peer;
  out += ']';
  for (size_t i = 0; i < argv.size(); ++i) {
    out += ' ';
    if (redact && i > 0) out += "\"(redacted)\"";
    else append_quoted(out, argv[i]);
  }
  out += "\r\n";
  return out;
}

}  // namespace headroom::proxy
