#include "resp/inline_split.h"

#include <cctype>

namespace headroom::resp {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
}  // namespace

bool split_inline_args(std::string_view line, std::vector<std::string>& out) {
  out.clear();
  size_t i = 0, n = line.size();
  for (;;) {
    while (i < n && is_space(line[i])) ++i;
    if (i >= n) return true;
    std::string arg;
    bool in_double = false, in_single = false;
    if (line[i] == '"') {
      in_double = true;
      ++i;
    } else if (line[i] == '\'') {
      in_single = true;
      ++i;
    }
    for (;;) {
      if (in_double) {
        if (i >= n) return false;
        char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' && hex_value(line[i + 2]) >= 0 &&
            hex_value(line[i + 3]) >= 0) {
          arg.push_back(static_cast<char>(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3])));
          i += 4;
        } else if (c == '\\' && i + 1 < n) {
          char e = line[i + 1];
          switch (e) {
            case 'n': arg.push_back('\n'); break;
            case 'r': arg.push_back('\r'); break;
            case 't': arg.push_back('\t'); break;
            case 'b': arg.push_back('\b'); break;
            case 'a': arg.push_back('\a'); break;
            default: arg.push_back(e); break;
          }
          i += 2;
        } else if (c == '"') {
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          ++i;
          break;
        } else {
          arg.push_back(c);
          ++i;
        }
      } else if (in_single) {
        if (i >= n) return false;
        char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          arg.push_back('\'');
          i += 2;
        } else if (c == '\'') {
          if (i + 1 < n && !is_space(line[i + 1])) return false;
          ++i;
          break;
        } else {
          arg.push_back(c);
          ++i;
        }
      } else {
        if (i >= n || is_space(line[i])) break;
        arg.push_back(line[i]);
        ++i;
      }
    }
    out.push_back(std::move(arg));
  }
}

}  // namespace headroom::resp
