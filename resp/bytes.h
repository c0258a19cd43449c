// Equality of short byte strings without a call into libc: keys and command names on
// the request path are mostly a few dozen bytes, where memcmp's setup costs more
// than the comparison.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace headroom::resp {

inline bool same_bytes(const char* a, const char* b, size_t n) {
  if (n >= 8) {
    uint64_t x, y;
    for (; n > 8; n -= 8, a += 8, b += 8) {
      std::memcpy(&x, a, 8);
      std::memcpy(&y, b, 8);
      if (x != y) return false;
    }
    std::memcpy(&x, a + n - 8, 8);  // the last 8 bytes, overlapping what was compared
    std::memcpy(&y, b + n - 8, 8);
    return x == y;
  }
  for (; n > 0; --n)
    if (*a++ != *b++) return false;
  return true;
}

inline bool same_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && same_bytes(a.data(), b.data(), a.size());
}

}  // namespace headroom::resp
