// The key-to-node directory, as this proxy knows it: a local cache of the shared
// directory on the main server (docs/directory.md is the contract; main_store.h keeps
// this cache in step with it). Once loaded it is complete: a key it does not hold has
// been placed by no proxy, so misses cost no round trip.
//
// Every entry carries the version (the change-stream sequence number) that last wrote
// it, and whether it is retiring. Changes are applied only when newer than what is
// held, so the order in which the command replies and the change stream arrive does
// not matter.
//
// Directory keys: a key with a hash tag ("{user:42}:cart") is placed by its tag, so
// every key with that tag shares one entry and one node.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/node_registry.h"
#include "resp/bytes.h"

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

struct Entry {
  NodeIndex node = 0;
  uint64_t version = 0;
  bool retiring = false;  // marked, or older than the last FLUSHALL
  bool moving = false;    // being moved off `node` (docs/moves.md): its commands wait
};

// An entry's state as the main server records it (directory_scripts.h).
enum class EntryState : uint8_t { Live = 0, Retiring = 1, Moving = 2 };

// The cache: an open-addressing table whose slots hold a 32-bit hash and an offset
// into one byte arena, where each entry is
//   [node:1][epoch:1][state:1][version:8][key length:4][key bytes].
// About 8 bytes of slot (at most 3/4 full) plus 15 bytes and the key itself per
// entry, in two allocations, where a node-based map costs a heap node, a std::string
// and a bucket per entry. Erased entries leave tombstones and dead arena bytes, both
// reclaimed when the table is rebuilt.
class Directory {
 public:
  Directory() { clear(); }

  std::optional<Entry> find(std::string_view dir_key) const {
    size_t i = probe(dir_key, hash_of(dir_key));
    if (slots_[i].offset >= kTombstone) return std::nullopt;
    return entry_at(slots_[i].offset);
  }

  // Sets the entry to (node, version, state) unless the entry held is newer
  // (a higher version). Returns whether it was set. The entry then belongs to the
  // current epoch.
  bool apply(std::string_view dir_key, NodeIndex node, uint64_t version, EntryState state);
  bool apply(std::string_view dir_key, NodeIndex node, uint64_t version, bool retiring) {
    return apply(dir_key, node, version, retiring ? EntryState::Retiring : EntryState::Live);
  }
  // Erases the entry unless it is newer than `version`.
  void erase(std::string_view dir_key, uint64_t version);

  // FLUSHALL at version `seq`: every entry older than it is retiring from now on.
  void flushed(uint64_t seq) {
    if (seq > flushed_) {
      flushed_ = seq;
      ++version_;
    }
  }
  uint64_t flushed_seq() const { return flushed_; }

  // A full reload from the main server runs as an epoch: begin_epoch(), then apply()
  // for every entry the main server has (and for changes meanwhile), then
  // end_epoch() erases the entries nothing set since, i.e. keys removed while this
  // proxy was not listening. Until then the old entries keep serving. Returns the
  // number erased.
  void begin_epoch() { ++epoch_; }
  size_t end_epoch();
  void clear() {
    ++version_;
    slots_.assign(kMinSlots, Slot{0, kEmpty});
    slots_.shrink_to_fit();
    arena_.clear();
    arena_.shrink_to_fit();
    size_ = used_ = moving_ = 0;
    flushed_ = 0;
  }
  size_t size() const { return size_; }
  // Changes with every change to the entries: a lookup made at one version holds
  // while the version is the same.
  uint64_t version() const { return version_; }

  // Every entry naming `node` (the config check at load).
  size_t count_on(NodeIndex node) const;
  // Entries being moved now (their commands wait).
  size_t moving() const { return moving_; }

  // Bytes of proxy memory the entries use: slots and arena, as allocated.
  size_t memory_estimate() const { return slots_.capacity() * sizeof(Slot) + arena_.capacity(); }

 private:
  struct Slot {
    uint32_t hash;
    uint32_t offset;  // into arena_; kEmpty or kTombstone when unused
  };
  static constexpr uint32_t kEmpty = 0xffffffffu;
  static constexpr uint32_t kTombstone = 0xfffffffeu;
  static constexpr size_t kMinSlots = 1024;
  // Offsets in an entry's header.
  static constexpr size_t kNode = 0, kEpoch = 1, kState = 2, kVersion = 3, kLength = 11;
  static constexpr size_t kHeader = kLength + sizeof(uint32_t);

  static uint32_t hash_of(std::string_view s) {
    uint64_t h = std::hash<std::string_view>{}(s);
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  std::string_view key_at(uint32_t off) const {
    uint32_t len;
    std::memcpy(&len, arena_.data() + off + kLength, sizeof len);
    return {arena_.data() + off + kHeader, len};
  }
  uint64_t version_at(uint32_t off) const {
    uint64_t v;
    std::memcpy(&v, arena_.data() + off + kVersion, sizeof v);
    return v;
  }
  bool is_moving(uint32_t off) const { return static_cast<EntryState>(arena_[off + kState]) == EntryState::Moving; }
  // Nodes are at most 255 (conf), so a node fits the entry's first byte.
  Entry entry_at(uint32_t off) const {
    Entry e;
    e.node = static_cast<unsigned char>(arena_[off + kNode]);
    e.version = version_at(off);
    const auto state = static_cast<EntryState>(arena_[off + kState]);
    e.moving = state == EntryState::Moving;
    e.retiring = state == EntryState::Retiring || (!e.moving && e.version < flushed_);
    return e;
  }
  void put(uint32_t off, NodeIndex node, uint64_t version, EntryState state) {
    arena_[off + kNode] = static_cast<char>(node);
    arena_[off + kEpoch] = static_cast<char>(epoch_);
    arena_[off + kState] = static_cast<char>(state);
    std::memcpy(arena_.data() + off + kVersion, &version, sizeof version);
  }
  // The slot holding `key`, or the empty slot where the search for it ended.
  size_t probe(std::string_view key, uint32_t h) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.offset == kEmpty) return i;
      if (s.offset != kTombstone && s.hash == h && resp::same_bytes(key_at(s.offset), key)) return i;
    }
  }
  void rebuild(size_t slots);

  std::vector<Slot> slots_;
  std::vector<char> arena_;
  size_t size_ = 0;
  size_t used_ = 0;  // live entries plus tombstones
  uint8_t epoch_ = 0;
  uint64_t version_ = 0;
  uint64_t flushed_ = 0;
  size_t moving_ = 0;
};

}  // namespace headroom::balancer
