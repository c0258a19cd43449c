// libFuzzer target: reply framing, as a backend's bytes arrive in chunks, and the
// array splitting merges use. Framed lengths must stay inside the bytes given.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "resp/buffer.h"
#include "resp/reply_framer.h"

using namespace headroom::resp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 64;
  ++data;
  --size;
  ReplyFramer framer;
  Buffer in;
  std::vector<std::string_view> elements;
  for (size_t pos = 0; pos < size; pos += chunk) {
    in.append(reinterpret_cast<const char*>(data) + pos, std::min(chunk, size - pos));
    for (;;) {
      int64_t len = framer.next(in.data(), in.size());
      if (len < 0) return 0;  // the connection would be reset
      if (len == 0) break;
      if (static_cast<size_t>(len) > in.size()) __builtin_trap();
      split_array_reply(std::string_view(in.data(), static_cast<size_t>(len)), elements);
      in.consume(static_cast<size_t>(len));
    }
  }
  return 0;
}
