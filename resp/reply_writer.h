// RESP2 encoding, appended to a Buffer: for replies the proxy makes itself (local
// commands, merged replies, errors) and for commands it rewrites (fragments of a
// split command, SCAN with a node cursor). Forwarded replies never pass through here.
#pragma once

#include <charconv>
#include <cstdint>
#include <span>
#include <string_view>

#include "resp/buffer.h"

namespace headroom::resp {

inline void append_line_number(Buffer& b, char type, int64_t n) {
  char tmp[24];
  tmp[0] = type;
  auto r = std::to_chars(tmp + 1, tmp + sizeof tmp - 2, n);
  r.ptr[0] = '\r';
  r.ptr[1] = '\n';
  b.append(tmp, static_cast<size_t>(r.ptr + 2 - tmp));
}

inline void add_simple(Buffer& b, std::string_view s) {
  b.push_back('+');
  b.append(s);
  b.append("\r\n", 2);
}

// `msg` without the leading '-', e.g. "ERR unknown command".
inline void add_error(Buffer& b, std::string_view msg) {
  b.push_back('-');
  b.append(msg);
  b.append("\r\n", 2);
}

inline void add_integer(Buffer& b, int64_t n) { append_line_number(b, ':', n); }
inline void add_array_header(Buffer& b, int64_t n) { append_line_number(b, '*', n); }
inline void add_nil(Buffer& b) { b.append("$-1\r\n", 5); }
inline void add_nil_array(Buffer& b) { b.append("*-1\r\n", 5); }
// A null in the client's protocol: RESP3 has one null for both.
inline void add_nil(Buffer& b, bool resp3) { resp3 ? b.append("_\r\n", 3) : add_nil(b); }
inline void add_nil_array(Buffer& b, bool resp3) { resp3 ? b.append("_\r\n", 3) : add_nil_array(b); }
inline void add_map_header(Buffer& b, int64_t pairs) { append_line_number(b, '%', pairs); }

inline void add_bulk(Buffer& b, std::string_view s) {
  append_line_number(b, '$', static_cast<int64_t>(s.size()));
  b.append(s);
  b.append("\r\n", 2);
}

// A command as a RESP array of bulk strings.
// RESP3's verbatim string ("=<len>\r\ntxt:<text>\r\n"), as Redis answers INFO in RESP3.
inline void add_verbatim(Buffer& b, std::string_view format, std::string_view s) {
  append_line_number(b, '=', static_cast<int64_t>(format.size() + 1 + s.size()));
  b.append(format);
  b.append(":", 1);
  b.append(s);
  b.append("\r\n", 2);
}

inline void add_command(Buffer& b, std::span<const std::string_view> argv) {
  add_array_header(b, static_cast<int64_t>(argv.size()));
  for (auto a : argv) add_bulk(b, a);
}

}  // namespace headroom::resp
