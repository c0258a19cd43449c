// The command table's rows (generated into command_rows.inc by
// scripts/gen_command_table.py) and the three functions the request path needs:
// lookup by name, arity, and key positions from Redis 7 key specs.
#include "resp/command_table.h"

#include <array>
#include <cstring>
#include <iterator>

#include "resp/ascii.h"
#include "resp/bytes.h"

namespace headroom::resp {

namespace {

#include "resp/command_rows.inc"

constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

constexpr size_t longest_name() {
  size_t n = 0;
  for (const CommandInfo& c : kRows) n = c.name.size() > n ? c.name.size() : n;
  return n;
}

// A name longer than every row cannot match one: lookup rejects it before touching
// it, so the stack buffer below is all the room a lookup ever needs.
constexpr size_t kMaxName = longest_name();

constexpr uint32_t kNameHashSeed = 2166136261u;

constexpr uint32_t name_hash(std::string_view s) {
  uint32_t h = kNameHashSeed;  // FNV-1a: short names, a few bytes each, no need for more
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// Open addressing over the rows' (lowercase) names, built at compile time, so a
// lookup is one hash of the lowered name, a probe or two, and no allocation or
// initialisation guard.
class NameIndex {
 public:
  constexpr NameIndex() {
    for (auto& s : slots_) s = -1;
    for (size_t i = 0; i < std::size(kRows); ++i) {
      size_t h = name_hash(kRows[i].name) & kMask;
      while (slots_[h] >= 0) h = (h + 1) & kMask;
      slots_[h] = static_cast<int16_t>(i);
    }
  }

  // `hash` is name_hash(lower_name), computed by the caller as it lowers the name.
  const CommandInfo* find(std::string_view lower_name, uint32_t hash) const {
    size_t h = hash & kMask;
    while (slots_[h] >= 0) {
      const CommandInfo& c = kRows[slots_[h]];
      if (same_bytes(c.name, lower_name)) return &c;
      h = (h + 1) & kMask;
    }
    return nullptr;
  }

 private:
  static constexpr size_t kSlots = 2048;  // a power of two, over 4x the rows: short probes
  static constexpr size_t kMask = kSlots - 1;
  static_assert(std::size(kRows) * 4 <= kSlots && std::size(kRows) < 32768);
  std::array<int16_t, kSlots> slots_{};
};

constexpr NameIndex kIndex;

// Appends `s` lowercased to buf[0..len), carrying on the name's hash. False when the
// result would not fit (no row is that long) or `s` holds '|': that character only
// joins a container to its subcommand in row names, so "object|encoding" typed as one
// word is unknown, as in Redis.
bool append_lower(char* buf, size_t& len, std::string_view s, uint32_t& hash) {
  if (s.size() > kMaxName - len) return false;
  for (char c : s) {
    if (c == '|') return false;
    char l = ascii_lower(c);
    buf[len++] = l;
    hash = (hash ^ static_cast<unsigned char>(l)) * 16777619u;
  }
  return true;
}

// Parses numkeys as Redis's string2ll does (no '+', no spaces, no leading zeros), so
// what Redis would reject is rejected here too. Only counts up to `max` matter: a
// larger one cannot fit in argv, and reports false like a malformed one.
bool parse_count(std::string_view s, int max, int& out) {
  if (s == "0") {
    out = 0;
    return true;
  }
  if (s.empty() || s[0] < '1' || s[0] > '9' || s.size() > 10) return false;  // also rejects negatives
  long long n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (n > max) return false;
  out = static_cast<int>(n);
  return true;
}

// The argv index just after the spec's keyword, or 0 when the keyword is absent.
// The bounds are Redis's: a forward search (startfrom > 0) stops before the last
// argument and a backward one (startfrom < 0, counted from the end) stops before
// argv[1], so a keyword in those places is not found and the spec yields no keys.
int keyword_begin(const KeySpec& spec, std::span<const std::string_view> argv) {
  const int argc = static_cast<int>(argv.size());
  if (spec.startfrom > 0) {
    for (int i = spec.startfrom; i <= argc - 2; ++i)
      if (iequals(argv[i], spec.keyword)) return i + 1;
  } else if (spec.startfrom < 0) {
    for (int i = argc + spec.startfrom; i >= 2; --i)
      if (iequals(argv[i], spec.keyword)) return i + 1;
  }
  return 0;
}

}  // namespace

const CommandInfo* lookup_command(std::span<const std::string_view> argv, bool* unknown_subcommand) {
  if (unknown_subcommand != nullptr) *unknown_subcommand = false;
  if (argv.empty()) return nullptr;
  char buf[kMaxName];
  size_t len = 0;
  uint32_t hash = kNameHashSeed;
  if (!append_lower(buf, len, argv[0], hash)) return nullptr;
  const CommandInfo* cmd = kIndex.find(std::string_view(buf, len), hash);
  // A container named alone returns its own row: its arity (-2) then gives Redis's
  // "wrong number of arguments for 'object' command".
  if (cmd == nullptr || !cmd->has(kContainer) || argv.size() < 2) return cmd;
  const CommandInfo* sub = nullptr;
  if (len < kMaxName) {
    buf[len++] = '|';
    hash = (hash ^ static_cast<unsigned char>('|')) * 16777619u;
    if (append_lower(buf, len, argv[1], hash)) sub = kIndex.find(std::string_view(buf, len), hash);
  }
  if (sub == nullptr && cmd->has(kOpenContainer)) return cmd;
  if (sub == nullptr && unknown_subcommand != nullptr) *unknown_subcommand = true;
  return sub;
}

bool blocks_with_options(const CommandInfo& cmd, std::span<const std::string_view> argv) {
  for (size_t i = 1; i < argv.size();) {
    const OptionSpec* opt = nullptr;
    for (const OptionSpec& o : cmd.options)
      if (iequals(argv[i], o.keyword)) opt = &o;
    if (opt == nullptr) return false;  // past the options: STREAMS and the keys
    if (iequals(opt->keyword, "BLOCK")) return true;
    i += 1 + static_cast<size_t>(opt->values);
  }
  return false;
}

bool arity_ok(const CommandInfo& cmd, size_t argc) {
  if (cmd.arity >= 0) return argc == static_cast<size_t>(cmd.arity);
  return argc >= static_cast<size_t>(-static_cast<int64_t>(cmd.arity));
}

// As Redis's getKeysUsingKeySpecs: find where a spec's keys begin (a fixed index, or
// just after a keyword), then which arguments from there are keys (a range, or a
// count argument followed by that many keys). A key count Redis would reject (not a
// number, negative, more keys than arguments) makes the whole call false; keys that
// are optional and absent (a missing keyword, an empty trailing range) add nothing,
// since Redis runs such commands and they must still go to their other keys' node.
bool resolve_keys(const CommandInfo& cmd, std::span<const std::string_view> argv, std::vector<KeyRef>& out) {
  const int argc = static_cast<int>(argv.size());
  if (cmd.key_specs.size() == 1) {  // the common row: one key at a fixed place (GET, SET, HSET, ...)
    const KeySpec& s = cmd.key_specs[0];
    if (s.begin == KeySpec::Begin::Index && s.find == KeySpec::Find::Range && s.lastkey == 0) {
      if (s.index < argc) out.push_back({static_cast<uint32_t>(s.index), s.may_create});
      return true;
    }
  }
  for (const KeySpec& spec : cmd.key_specs) {
    int first = 0;
    if (spec.begin == KeySpec::Begin::Index) {
      first = spec.index;
      // Keys at the end that argc leaves out are optional ones (PFMERGE dest [src...]):
      // arity, checked before, guards the mandatory ones. Redis's own spec walk calls
      // this invalid, yet runs the command and routes it by its first key.
      if (first >= argc) continue;
    } else {
      first = keyword_begin(spec, argv);
      if (first == 0) continue;  // an optional part (STORE, STREAMS, ...) that is not there
    }

    long long last = 0;  // 64 bits: numkeys * keystep must not wrap
    if (spec.find == KeySpec::Find::Range) {
      if (spec.lastkey >= 0) {
        last = first + spec.lastkey;
      } else if (spec.limit == 0) {
        last = argc + spec.lastkey;  // -1: up to the last argument, -2: all but one, ...
      } else {
        // Keys take the first 1/limit of what follows (XREAD's STREAMS k1 k2 id1 id2);
        // an unbalanced tail is Redis's own error to give.
        last = first + (argc - first) / spec.limit + spec.lastkey;
      }
      if (last < first) continue;  // an open range with nothing in it, like the absent keys above
    } else {
      int count_at = first + spec.keynumidx;
      int numkeys = 0;
      if (count_at >= argc || !parse_count(argv[count_at], argc, numkeys)) return false;
      first += spec.firstkey;
      if (numkeys == 0) continue;  // EVAL "..." 0: no keys, which EVAL accepts
      // numkeys counts keys, keystep apart (Redis's specs all use keystep 1 here).
      last = first + static_cast<long long>(numkeys - 1) * spec.keystep;
    }
    if (spec.keystep <= 0 || first >= argc || last >= argc || last < first) return false;
    for (long long i = first; i <= last; i += spec.keystep)
      out.push_back({static_cast<uint32_t>(i), spec.may_create});
  }
  return true;
}

uint64_t growth_bytes(const CommandInfo& cmd, std::span<const std::string_view> argv, std::string_view reply) {
  const Growth& g = cmd.growth;
  if (g.kind == Growth::Kind::None || argv.size() <= g.first) return 0;
  uint64_t bytes = 0;
  for (size_t i = g.first; i < argv.size(); ++i) bytes += argv[i].size();
  if (g.kind == Growth::Kind::Payload) return bytes;
  // PerAdded: ":<added>\r\n" of (argc - first) / stride elements sent.
  const uint64_t sent = (argv.size() - g.first) / g.stride;
  uint64_t added = 0;
  if (reply.size() < 4 || reply[0] != ':' || sent == 0) return 0;
  for (size_t i = 1; i < reply.size() && reply[i] >= '0' && reply[i] <= '9'; ++i)
    added = added * 10 + static_cast<uint64_t>(reply[i] - '0');
  return added >= sent ? bytes : bytes / sent * added;
}

std::span<const CommandInfo> all_commands() { return kRows; }

}  // namespace headroom::resp
