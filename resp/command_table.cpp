#include "resp/command_table.h"

#include "resp/ascii.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cstring>

namespace headroom::resp {

namespace {

#include "resp/command_rows.inc"

constexpr size_t kMaxName = 48;  // longer than any "container|subcommand" name

// An open-addressing index over the rows' names, built once: lookup lowercases into a
// stack buffer and probes, with no allocation.
class NameIndex {
 public:
  NameIndex() {
    slots_.fill(-1);
    for (size_t i = 0; i < std::size(kRows); ++i) {
      size_t h = hash(kRows[i].name) & kMask;
      while (slots_[h] >= 0) h = (h + 1) & kMask;
      slots_[h] = static_cast<int16_t>(i);
    }
  }
  const CommandInfo* find(std::string_view lower_name) const {
    size_t h = hash(lower_name) & kMask;
    while (slots_[h] >= 0) {
      const CommandInfo& c = kRows[slots_[h]];
      if (c.name == lower_name) return &c;
      h = (h + 1) & kMask;
    }
    return nullptr;
  }

 private:
  static constexpr size_t kSlots = 2048;  // a power of two, well over 2x the rows
  static constexpr size_t kMask = kSlots - 1;
  static_assert(std::size(kRows) * 2 < kSlots);
  static size_t hash(std::string_view s) {
    uint32_t h = 2166136261u;
    for (unsigned char c : s) h = (h ^ c) * 16777619u;
    return h;
  }
  std::array<int16_t, kSlots> slots_;
};

const NameIndex& index() {
  static const NameIndex idx;
  return idx;
}

// Lowercases `s` into `buf` after `prefix_len` bytes already there. false if too long.
bool append_lower(char* buf, size_t& len, std::string_view s) {
  if (len + s.size() > kMaxName) return false;
  for (char c : s) buf[len++] = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return true;
}


}  // namespace

const CommandInfo* lookup_command(std::span<const std::string_view> argv, bool* unknown_subcommand) {
  if (unknown_subcommand != nullptr) *unknown_subcommand = false;
  if (argv.empty()) return nullptr;
  char buf[kMaxName];
  size_t len = 0;
  if (!append_lower(buf, len, argv[0])) return nullptr;
  const CommandInfo* cmd = index().find(std::string_view(buf, len));
  if (cmd == nullptr || !cmd->has(kContainer) || argv.size() < 2) return cmd;
  buf[len++] = '|';
  const CommandInfo* sub = append_lower(buf, len, argv[1]) ? index().find(std::string_view(buf, len)) : nullptr;
  if (sub == nullptr && unknown_subcommand != nullptr) *unknown_subcommand = true;
  return sub;
}

bool arity_ok(const CommandInfo& cmd, size_t argc) {
  if (cmd.arity >= 0) return argc == static_cast<size_t>(cmd.arity);
  return argc >= static_cast<size_t>(-cmd.arity);
}

// As Redis's getKeysUsingKeySpecs: find where the keys begin, then which args are keys.
bool resolve_keys(const CommandInfo& cmd, std::span<const std::string_view> argv, std::vector<KeyRef>& out) {
  const int argc = static_cast<int>(argv.size());
  for (const KeySpec& spec : cmd.key_specs) {
    int first = 0;
    if (spec.begin == KeySpec::Begin::Index) {
      first = spec.index;
    } else {
      // Keyword search: from startfrom towards the end, or backwards from the end
      // when startfrom is negative. A keyword that is absent means no keys here.
      int start = spec.startfrom >= 0 ? spec.startfrom : argc + spec.startfrom;
      int end = spec.startfrom >= 0 ? argc - 1 : 0;
      int step = spec.startfrom >= 0 ? 1 : -1;
      first = 0;
      for (int i = start; step > 0 ? i <= end : i >= end; i += step) {
        if (i <= 0 || i >= argc) continue;
        if (iequals(argv[i], spec.keyword)) {
          first = i + 1;
          break;
        }
      }
      if (first == 0) continue;
    }
    if (first >= argc) {
      if (spec.begin == KeySpec::Begin::Keyword) return false;  // keyword with nothing after it
      continue;                                                 // optional key absent (Redis does the same)
    }
    int last = 0, step = spec.keystep;
    if (spec.find == KeySpec::Find::Range) {
      if (spec.lastkey >= 0) {
        last = first + spec.lastkey;
      } else if (spec.limit <= 1) {
        last = argc + spec.lastkey;
      } else {
        // The keys are the first 1/limit of what follows (XREAD's STREAMS k1 k2 id1 id2).
        int remaining = argc - first;
        if (remaining % spec.limit != 0) return false;
        last = first + remaining / spec.limit - 1;
      }
    } else {
      int numidx = first + spec.keynumidx;
      if (numidx >= argc) return false;
      long long n = 0;
      std::string_view s = argv[numidx];
      auto r = std::from_chars(s.data(), s.data() + s.size(), n);
      if (r.ec != std::errc() || r.ptr != s.data() + s.size() || n < 0 || n > argc) return false;
      first = first + spec.firstkey;
      if (n == 0) continue;
      last = first + static_cast<int>((n - 1) * spec.keystep);
    }
    if (last >= argc || step <= 0) return false;
    for (int i = first; i <= last; i += step) out.push_back({static_cast<uint32_t>(i), spec.may_create});
  }
  return true;
}

std::span<const CommandInfo> all_commands() { return kRows; }

}  // namespace headroom::resp
