// The key-to-node directory, as this proxy knows it: a local cache of the shared
// store on the main server (see main_store.h). Once loaded it is complete: a key it
// does not hold has been placed by no proxy, so misses cost no round trip.
//
// Directory keys: a key with a hash tag ("{user:42}:cart") is placed by its tag, so
// every key with that tag shares one entry and one node.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "balancer/node_registry.h"

namespace headroom::balancer {

// The directory key for a key: its hash tag with the braces ("{user:42}") when it
// has a non-empty one, as Redis Cluster defines it, else the key itself.
std::string_view directory_key(std::string_view key);

// True when the directory key is a hash tag (such entries outlive any one key).
inline bool is_tag(std::string_view dir_key) {
  return dir_key.size() >= 2 && dir_key.front() == '{' && dir_key.back() == '}';
}

// Stable 64-bit FNV-1a: the main store's bucket of a key must not change between
// builds, machines or versions.
uint64_t stable_hash(std::string_view s);

class Directory {
 public:
  std::optional<NodeIndex> find(std::string_view dir_key) const {
    auto it = map_.find(dir_key);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void set(std::string_view dir_key, NodeIndex node) {
    auto it = map_.find(dir_key);
    if (it != map_.end()) it->second = node;
    else map_.emplace(std::string(dir_key), node);
  }
  // Erases the entry when it still names `node`.
  void erase_if(std::string_view dir_key, NodeIndex node) {
    auto it = map_.find(dir_key);
    if (it != map_.end() && it->second == node) map_.erase(it);
  }
  void clear() { map_.clear(); }
  size_t size() const { return map_.size(); }

  // Bytes of proxy memory the entries use (keys, nodes, buckets), for INFO.
  size_t memory_estimate() const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, NodeIndex, Hash, std::equal_to<>> map_;
};

}  // namespace headroom::balancer
