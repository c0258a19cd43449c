#include "balancer/directory_scripts.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>

#include "balancer/control_conn.h"
#include "resp/reply_writer.h"

namespace headroom::balancer::scripts {

namespace {
constexpr size_t kScripts = static_cast<size_t>(Script::kCount);

std::string sha1_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}
}  // namespace

std::string_view text(Script s) {
  switch (s) {
    case Script::Place: return kPlace;
    case Script::Retire: return kRetire;
    case Script::Settle: return kSettle;
    case Script::Flushed: return kFlushed;
    case Script::LoadBucket: return kLoadBucket;
    case Script::Layout: return kLayoutCheck;
    case Script::Heartbeat: return kHeartbeat;
    case Script::Lease: return kLease;
    case Script::Proxies: return kProxies;
    case Script::DropProxy: return kDropProxy;
    case Script::MoveBegin: return kMoveBegin;
    case Script::MoveEnd: return kMoveEnd;
    case Script::MoveHeld: return kMoveHeld;
    case Script::kCount: break;
  }
  return {};
}

const std::string& sha(Script s) {
  static const std::array<std::string, kScripts> shas = [] {
    std::array<std::string, kScripts> a;
    for (size_t i = 0; i < kScripts; ++i) a[i] = sha1_hex(text(static_cast<Script>(i)));
    return a;
  }();
  return shas[static_cast<size_t>(s)];
}

void load_all(ControlConn& conn) {
  for (size_t i = 0; i < kScripts; ++i) {
    const auto s = static_cast<Script>(i);
    (void)conn.command({"SCRIPT", "LOAD", text(s)}, [s, label = conn.label()](redisReply* r) {  // at each up
      if (r != nullptr && r->type == REDIS_REPLY_ERROR)
        spdlog::error("{}: SCRIPT LOAD of a directory script ({}) answered {}", label, sha(s),
                      std::string_view(r->str, r->len));
    });
  }
}

bool parse_entry_value(std::string_view value, EntryValue& out) {
  out = EntryValue{};
  size_t sp = value.find(' ');
  out.node = value.substr(0, sp);
  if (out.node.empty()) return false;
  if (sp == std::string_view::npos) return true;
  std::string_view rest = value.substr(sp + 1);
  size_t sp2 = rest.find(' ');
  std::string_view digits = rest.substr(0, sp2);
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out.version);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return false;
  if (sp2 == std::string_view::npos) return true;
  std::string_view state = rest.substr(sp2 + 1);
  if (state == "R") {
    out.retiring = true;
    return true;
  }
  // "M<to>:<flushes>"
  size_t colon = state.rfind(':');
  if (state.size() < 4 || state[0] != 'M' || colon == std::string_view::npos || colon < 2) return false;
  out.moving_to = state.substr(1, colon - 1);
  std::string_view f = state.substr(colon + 1);
  auto rf = std::from_chars(f.data(), f.data() + f.size(), out.flushes);
  return rf.ec == std::errc() && rf.ptr == f.data() + f.size();
}

void encode_head(resp::Buffer& out, Script s, size_t numkeys, size_t total_after) {
  resp::add_array_header(out, static_cast<int64_t>(3 + total_after));
  resp::add_bulk(out, "EVALSHA");
  resp::add_bulk(out, sha(s));
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, numkeys);
  resp::add_bulk(out, std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
}

void encode(resp::Buffer& out, Script s, std::span<const std::string_view> keys,
            std::span<const std::string_view> args) {
  encode_head(out, s, keys.size(), keys.size() + args.size());
  for (auto k : keys) resp::add_bulk(out, k);
  for (auto a : args) resp::add_bulk(out, a);
}

}  // namespace headroom::balancer::scripts
