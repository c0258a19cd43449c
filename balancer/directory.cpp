#include "balancer/directory.h"

namespace headroom::balancer {

std::string_view directory_key(std::string_view key) {
  size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open, close - open + 1);
}

uint64_t stable_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

size_t Directory::memory_estimate() const {
  // libstdc++ node: next pointer + cached hash + std::string + value, plus a bucket slot.
  size_t per_entry = sizeof(void*) + sizeof(size_t) + sizeof(std::string) + sizeof(NodeIndex) + sizeof(void*);
  size_t total = map_.size() * per_entry + map_.bucket_count() * sizeof(void*);
  for (const auto& [k, v] : map_)
    if (k.capacity() > 15) total += k.capacity() + 1;
  return total;
}

}  // namespace headroom::balancer
