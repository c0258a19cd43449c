#include "balancer/directory.h"

#include <algorithm>
#include <bit>

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

bool Directory::apply(std::string_view dir_key, NodeIndex node, uint64_t version, EntryState state) {
  uint32_t h = hash_of(dir_key);
  size_t i = probe(dir_key, h);
  if (slots_[i].offset < kTombstone) {
    const uint64_t held = version_at(slots_[i].offset);
    if (held > version) return false;
    // A placement's reply names a moving entry's version as live (kPlace answers it
    // so): the move's own message said more, and stands.
    if (held == version && is_moving(slots_[i].offset) && state != EntryState::Moving) return false;
    ++version_;
    moving_ -= is_moving(slots_[i].offset);
    put(slots_[i].offset, node, version, state);
    moving_ += state == EntryState::Moving;
    return true;
  }
  ++version_;
  if ((used_ + 1) * 4 > slots_.size() * 3 || arena_.size() + kHeader + dir_key.size() >= kTombstone) {
    rebuild(std::max(kMinSlots, std::bit_ceil((size_ + 1) * 2)));
    i = probe(dir_key, h);
  }
  uint32_t off = static_cast<uint32_t>(arena_.size());
  uint32_t len = static_cast<uint32_t>(dir_key.size());
  arena_.resize(arena_.size() + kHeader + len);
  put(off, node, version, state);
  moving_ += state == EntryState::Moving;
  std::memcpy(arena_.data() + off + kLength, &len, sizeof len);
  std::memcpy(arena_.data() + off + kHeader, dir_key.data(), len);
  slots_[i] = {h, off};
  ++size_;
  ++used_;
  return true;
}

void Directory::erase(std::string_view dir_key, uint64_t version) {
  size_t i = probe(dir_key, hash_of(dir_key));
  if (slots_[i].offset >= kTombstone || version_at(slots_[i].offset) > version) return;
  ++version_;
  moving_ -= is_moving(slots_[i].offset);
  slots_[i].offset = kTombstone;  // its arena bytes are reclaimed by the next rebuild
  --size_;
}

size_t Directory::end_epoch() {
  ++version_;
  size_t erased = 0;
  for (Slot& s : slots_) {
    if (s.offset >= kTombstone || static_cast<uint8_t>(arena_[s.offset + kEpoch]) == epoch_) continue;
    moving_ -= is_moving(s.offset);
    s.offset = kTombstone;
    --size_;
    ++erased;
  }
  return erased;
}

size_t Directory::count_on(NodeIndex node) const {
  size_t n = 0;
  for (const Slot& s : slots_)
    if (s.offset < kTombstone && static_cast<unsigned char>(arena_[s.offset + kNode]) == node) ++n;
  return n;
}

// Moves the live entries into a table of `slots` slots and a compacted arena.
void Directory::rebuild(size_t slots) {
  std::vector<Slot> old_slots(slots, Slot{0, kEmpty});
  old_slots.swap(slots_);
  std::vector<char> old_arena;
  old_arena.swap(arena_);
  arena_.reserve(old_arena.size());
  size_t mask = slots_.size() - 1;
  for (const Slot& s : old_slots) {
    if (s.offset >= kTombstone) continue;
    uint32_t len;
    std::memcpy(&len, old_arena.data() + s.offset + kLength, sizeof len);
    uint32_t off = static_cast<uint32_t>(arena_.size());
    arena_.insert(arena_.end(), old_arena.begin() + s.offset, old_arena.begin() + s.offset + kHeader + len);
    size_t i = s.hash & mask;
    while (slots_[i].offset != kEmpty) i = (i + 1) & mask;
    slots_[i] = {s.hash, off};
  }
  used_ = size_;
}

}  // namespace headroom::balancer
