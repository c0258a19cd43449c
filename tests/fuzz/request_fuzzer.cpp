// libFuzzer target: request framing and command routing. The input is cut into
// chunks (the first byte picks the chunk size) and fed as a client would send it;
// every framed request is looked up and its keys resolved. Nothing may crash, leak
// or read out of bounds, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "resp/command_table.h"
#include "resp/request_framer.h"

using namespace headroom::resp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 64;
  ++data;
  --size;
  RequestLimits limits;
  limits.max_bulk_bytes = 1 << 16;
  limits.max_request_bytes = 1 << 20;
  limits.max_args = 1024;
  RequestFramer framer(limits);
  Buffer in;
  std::vector<KeyRef> keys;
  for (size_t pos = 0; pos < size; pos += chunk) {
    size_t n = std::min(chunk, size - pos);
    char* w = in.writable(n);
    std::memcpy(w, data + pos, n);
    in.commit(n);
    for (;;) {
      RequestView v;
      auto r = framer.next(in, v);
      if (r == RequestFramer::Result::kNeedMore) break;
      if (r == RequestFramer::Result::kError) return 0;  // the connection would close
      for (auto a : v.argv)  // every argument lies inside the raw bytes forwarded
        if (a.data() < v.raw.data() || a.data() + a.size() > v.raw.data() + v.raw.size()) __builtin_trap();
      if (!v.argv.empty()) {
        bool unknown_sub = false;
        if (const CommandInfo* cmd = lookup_command(v.argv, &unknown_sub); cmd && arity_ok(*cmd, v.argv.size())) {
          keys.clear();
          if (resolve_keys(*cmd, v.argv, keys))
            for (const KeyRef& k : keys)
              if (k.argv_index >= v.argv.size()) __builtin_trap();  // a key outside argv
          (void)blocks(*cmd, v.argv);
        }
      }
      in.consume(v.consumed);
    }
  }
  return 0;
}
