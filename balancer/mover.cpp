#include "balancer/mover.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "balancer/coordinator.h"
#include "balancer/directory.h"
#include "balancer/directory_scripts.h"
#include "balancer/main_store.h"
#include "resp/reply_writer.h"

namespace headroom::balancer {

using scripts::Script;

namespace {

constexpr size_t kMaxInterruptedPerBatch = 256;
using scripts::kMovesCleanKey;

// The data-node side of the fence (see mover.h). Each runs on a node, atomically:
// once a newer coordinator's fence is there, an older mover's writes are refused.
constexpr std::string_view kNodeFence = R"(
redis.call('SELECT', 1)
local f = tonumber(redis.call('GET', 'hr:mover:fence') or '0')
if tonumber(ARGV[1]) > f then redis.call('SET', 'hr:mover:fence', ARGV[1]) end
return 1
)";
// KEYS: the keys; ARGV: the token, then per key its TTL (ms, 0: none) and DUMP payload.
constexpr std::string_view kNodeRestore = R"(
redis.call('SELECT', 1)
local f = tonumber(redis.call('GET', 'hr:mover:fence') or '0')
redis.call('SELECT', 0)
if tonumber(ARGV[1]) < f then return redis.error_reply('FENCED a newer coordinator moves keys now') end
for i, k in ipairs(KEYS) do redis.call('RESTORE', k, ARGV[2 * i], ARGV[2 * i + 1], 'REPLACE') end
return #KEYS
)";
// One restore call carries at most this many keys or payload bytes: a script blocks
// its node while it runs, so each stays short (a quarter of a millisecond).
constexpr size_t kRestoreKeysPerCall = 32;
constexpr size_t kRestoreBytesPerCall = 256 << 10;
// A node runs every command one read brings in before it serves another client: a
// batch's thousands of DUMPs sent at once would hold the node's clients back for
// milliseconds. The copy keeps this many keys' DUMP and PTTL in flight.
constexpr size_t kCopyWindow = 32;
constexpr std::string_view kNodeUnlink = R"(
redis.call('SELECT', 1)
local f = tonumber(redis.call('GET', 'hr:mover:fence') or '0')
redis.call('SELECT', 0)
if tonumber(ARGV[1]) < f then return redis.error_reply('FENCED a newer coordinator moves keys now') end
return redis.call('UNLINK', unpack(KEYS))
)";

// A SCAN MATCH pattern for keys holding `tag` ("{t}"): every glob character escaped.
std::string tag_pattern(std::string_view tag) {
  std::string p = "*";
  for (char ch : tag) {
    if (ch == '*' || ch == '?' || ch == '[' || ch == ']' || ch == '\\') p += '\\';
    p += ch;
  }
  return p + "*";
}

}  // namespace

Mover::Mover(Coordinator& c) : c_(c) {}

// A move holds its keys' commands from its begin: a barrier not reached in half a
// request timeout is given up, so no command waits for a move longer than that.
uint64_t Mover::barrier_timeout_ms() const {
  const uint64_t request_ms = c_.config().request_timeout_ms == 0 ? 5000 : c_.config().request_timeout_ms;
  return std::max<uint64_t>(100, request_ms / 2);
}

void Mover::enter(Phase p) {
  const uint64_t now = uv_now(c_.loop());
  const uint64_t spent = now - phase_ms_;
  switch (phase_) {
    case Phase::Begin: counters_.ms_begin += spent; break;
    case Phase::Barrier: counters_.ms_barrier += spent; break;
    case Phase::Collect:
    case Phase::Copy: counters_.ms_copy += spent; break;
    case Phase::Restore: counters_.ms_restore += spent; break;
    case Phase::Commit: counters_.ms_commit += spent; break;
    case Phase::Delete: counters_.ms_delete += spent; break;
    default: break;
  }
  const bool went_idle = p == Phase::Idle && phase_ != Phase::Idle;
  phase_ = p;
  phase_ms_ = now;
  slow_warned_ = false;
  if (went_idle) c_.mover_idle();
}

const char* Mover::phase_name() const {
  switch (phase_) {
    case Phase::Idle: return "idle";
    case Phase::Begin: return "begin";
    case Phase::Barrier: return "barrier";
    case Phase::Collect: return "collect";
    case Phase::Copy: return "copy";
    case Phase::Restore: return "restore";
    case Phase::Commit: return "commit";
    case Phase::Delete: return "delete";
    case Phase::Undo: return "undo";
    case Phase::Cleanup: return "cleanup";
  }
  return "?";
}

void Mover::begin(uint64_t token) {
  end();
  token_ = token;
  fenced_.assign(c_.nodes().size(), 0);
  for (NodeIndex i = 0; i < c_.nodes().size(); ++i) node_up(i);
  cleanup_due_ = true;  // what an earlier coordinator listed and did not delete
}

void Mover::end() {
  ++gen_;  // every callback of the batch in flight is ignored from now
  enter(Phase::Idle);
  items_.clear();
  token_ = 0;
  interrupted_.clear();
  interrupted_keys_.clear();
}

void Mover::node_up(NodeIndex node) {
  if (token_ == 0) return;
  ControlConn* conn = c_.node_conn(node);
  if (conn == nullptr) return;
  fenced_[node] = 0;
  const uint64_t token = token_;
  // The connection is up (node_conn): if it drops first, its next up sends this again.
  (void)conn->command({"EVAL", kNodeFence, "0", std::to_string(token)}, [this, node, token](redisReply* r) {
    if (token != token_ || r == nullptr) return;
    if (r->type == REDIS_REPLY_ERROR) {
      spdlog::error("mover: node {}: cannot set the mover fence ({}): no keys move to or from it",
                    c_.nodes()[node].name(), reply_text(r));
      return;
    }
    fenced_[node] = token;
  });
}

bool Mover::start(NodeIndex from, NodeIndex to, std::vector<std::string> dir_keys) {
  if (busy() || cleanup_due_ || token_ == 0 || from == to || dir_keys.empty() || !fenced(from) || !fenced(to) ||
      c_.node_conn(from) == nullptr || c_.node_conn(to) == nullptr || !c_.main().up())
    return false;
  ++gen_;
  enter(Phase::Begin);
  last_bytes_ = last_keys_ = 0;
  from_ = from;
  to_ = to;
  finishing_ = failed_ = false;
  begun_ms_ = uv_now(c_.loop());
  items_.clear();
  for (auto& k : dir_keys) items_.push_back(Item{std::move(k), {}, {}, {}, {}, false});
  ++counters_.batches;

  resp::Buffer call;
  const size_t n = items_.size();
  scripts::encode_head(call, Script::MoveBegin, n, n + 5 + n);
  for (const auto& it : items_) resp::add_bulk(call, MainStore::bucket_name(it.dir_key));
  resp::add_bulk(call, kEventsChannel);
  resp::add_bulk(call, c_.store().origin());
  resp::add_bulk(call, c_.lease_value());
  resp::add_bulk(call, c_.nodes()[from].name());
  resp::add_bulk(call, c_.nodes()[to].name());
  for (const auto& it : items_) resp::add_bulk(call, it.dir_key);
  const uint64_t gen = gen_;
  if (!c_.main().command_encoded(call.view(), [this, gen](redisReply* r) {
        if (gen == gen_) begun(r);
      })) {
    enter(Phase::Idle);
    return false;
  }
  return true;
}

void Mover::begun(redisReply* r) {
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && reply_text(r).starts_with("UNKNOWNNODE")) {
    // A proxy has not reloaded the config that added the destination yet: later.
    if (counters_.waits_for_config++ % 100 == 0) spdlog::warn("mover: {}; moves there wait", reply_text(r));
    enter(Phase::Idle);
    return;
  }
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
    if (r != nullptr && c_.lease_lost(r)) return;
    spdlog::warn("mover: the begin of a move was not answered");
    ++counters_.errors;
    enter(Phase::Idle);  // if it ran, the sweep finds its entries moving and they are finished
    return;
  }
  if (r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer == 0) {
    enter(Phase::Idle);  // no entry could move (changed meanwhile, held, or flushed)
    return;
  }
  seq_ = static_cast<uint64_t>(r->element[0]->integer);
  const std::string value(reply_text(r->element[1]));
  std::vector<Item> kept;
  for (size_t e = 2; e < r->elements; ++e) {
    const auto idx = static_cast<size_t>(r->element[e]->integer) - 1;
    if (idx >= items_.size()) continue;
    kept.push_back(std::move(items_[idx]));
    kept.back().value = value;
  }
  items_ = std::move(kept);
  enter(Phase::Barrier);
  c_.watch_barrier();
  tick();
}

void Mover::found_moving(std::string_view dir_key, std::string_view value) {
  if (token_ == 0) return;
  for (const auto& it : items_)
    if (busy() && it.dir_key == dir_key && it.value == value) return;  // this batch's
  if (interrupted_keys_.insert(std::string(dir_key)).second) interrupted_.emplace_back(dir_key, value);
}

void Mover::tick() {
  if (token_ == 0) return;
  // Every step is bounded (request_ms per command, the barrier's timeout): one that
  // lasts far longer is a bug or a node that answers nothing, and is said once.
  if (busy() && !slow_warned_ && uv_now(c_.loop()) - phase_ms_ > 10 * uint64_t{c_.config().request_timeout_ms + 1000}) {
    slow_warned_ = true;
    spdlog::warn("mover: a batch of {} entries from {} to {} has been at its {} step for {} ms", items_.size(),
                 c_.nodes()[from_].name(), c_.nodes()[to_].name(), phase_name(), uv_now(c_.loop()) - phase_ms_);
  }
  if (phase_ == Phase::Barrier) {
    if (c_.barrier() >= seq_) {
      check_holds();
    } else if (!finishing_ && uv_now(c_.loop()) - begun_ms_ > barrier_timeout_ms()) {
      // A proxy has not acknowledged (paused, slow, cut off): rather than hold the
      // keys' commands longer, the entries go back where they are. Nothing was copied.
      undo("not every proxy acknowledged the move in time");
    }
    return;
  }
  if (busy()) return;
  if (cleanup_due_) {
    clean_up();
    return;
  }
  if (interrupted_.empty() || uv_now(c_.loop()) < retry_after_ms_) return;
  // Interrupted moves: a batch of those sharing the first one's source and destination.
  scripts::EntryValue first;
  while (!interrupted_.empty() && !scripts::parse_entry_value(interrupted_.front().second, first)) {
    interrupted_keys_.erase(interrupted_.front().first);
    interrupted_.pop_front();
  }
  if (interrupted_.empty()) return;
  // Copies: the loop below erases the element `first` points into.
  const std::string first_from(first.node), first_to(first.moving_to);
  auto from = c_.nodes().find(first_from);
  auto to = c_.nodes().find(first_to);
  if (!from || !to || !fenced(*from) || !fenced(*to) || c_.node_conn(*from) == nullptr ||
      c_.node_conn(*to) == nullptr || !c_.main().up())
    return;  // later (a node or the main server is down, or a fence is not confirmed yet)
  ++gen_;
  items_.clear();
  uint64_t seq = 0;
  for (auto it = interrupted_.begin(); it != interrupted_.end() && items_.size() < kMaxInterruptedPerBatch;) {
    scripts::EntryValue ev;
    if (scripts::parse_entry_value(it->second, ev) && ev.node == first_from && ev.moving_to == first_to) {
      items_.push_back(Item{it->first, it->second, {}, {}, {}, false});
      seq = std::max(seq, ev.version);
      interrupted_keys_.erase(it->first);
      it = interrupted_.erase(it);
    } else {
      ++it;
    }
  }
  last_bytes_ = last_keys_ = 0;
  spdlog::info("mover: finishing {} interrupted moves from {} to {}", items_.size(), first_from, first_to);
  from_ = *from;
  to_ = *to;
  seq_ = seq;
  finishing_ = true;
  failed_ = false;
  begun_ms_ = uv_now(c_.loop());
  // Only entries still exactly as found: the mover is the only writer of moving
  // entries, and this check comes after anything of its own that could change them.
  enter(Phase::Begin);
  left_ = items_.size();
  const uint64_t gen = gen_;
  auto still = std::make_shared<std::vector<bool>>(items_.size(), false);
  for (size_t i = 0; i < items_.size(); ++i) {
    // The main server is up (checked above): every read of this loop is sent.
    (void)c_.main().command({"HGET", MainStore::bucket_name(items_[i].dir_key), items_[i].dir_key},
                      [this, gen, i, still](redisReply* r) {
                        if (gen != gen_) return;
                        (*still)[i] = r != nullptr && r->type == REDIS_REPLY_STRING && reply_text(r) == items_[i].value;
                        if (--left_ != 0) return;
                        std::vector<Item> kept;
                        for (size_t k = 0; k < items_.size(); ++k)
                          if ((*still)[k]) kept.push_back(std::move(items_[k]));
                        items_ = std::move(kept);
                        if (items_.empty()) {
                          enter(Phase::Idle);
                          return;
                        }
                        enter(Phase::Barrier);
                        c_.watch_barrier();
                        tick();
                      });
  }
}

// --- the copy ---------------------------------------------------------------------------

// Past the barrier: an entry a proxy holds now (a blocking call that began there before
// it applied the begin waits on the source) does not move; it goes back, live.
void Mover::check_holds() {
  enter(Phase::Collect);
  resp::Buffer call;
  scripts::encode_head(call, Script::MoveHeld, 0, 1 + items_.size());
  resp::add_bulk(call, c_.lease_value());
  for (const auto& it : items_) resp::add_bulk(call, it.dir_key);
  const uint64_t gen = gen_;
  const bool sent = c_.main().command_encoded(call.view(), [this, gen](redisReply* r) {
    if (gen != gen_) return;
    if (r != nullptr && c_.lease_lost(r)) return;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) {
      fail("the main server did not answer the holds check");
      return;
    }
    std::vector<size_t> held;
    for (size_t e = 0; e < r->elements; ++e) {
      const auto i = static_cast<size_t>(r->element[e]->integer) - 1;
      if (i < items_.size()) held.push_back(i);
    }
    if (held.empty()) {
      collect();
      return;
    }
    end_moves('U', held, false);  // encoded now: the items may go from the batch after
    std::vector<Item> kept;
    for (size_t i = 0; i < items_.size(); ++i)
      if (std::find(held.begin(), held.end(), i) == held.end()) kept.push_back(std::move(items_[i]));
    items_ = std::move(kept);
    if (items_.empty()) {
      enter(Phase::Idle);
      return;
    }
    collect();
  });
  if (!sent) fail("the main server is unreachable");
}

void Mover::collect() {
  enter(Phase::Collect);
  left_ = 1;  // held until every scan is sent: a scan that fails at once cannot end the phase early
  for (size_t i = 0; i < items_.size(); ++i) {
    if (is_tag(items_[i].dir_key)) {
      ++left_;
      scan_tag(i, "0");
    } else {
      items_[i].keys = {items_[i].dir_key};
    }
  }
  step_done();
}

// One tag's scan, page by page; its end (or failure) is one step of the collect.
void Mover::scan_tag(size_t item, std::string cursor) {
  ControlConn* src = c_.node_conn(from_);
  const uint64_t gen = gen_;
  const bool sent = src != nullptr &&
      src->command({"SCAN", cursor, "MATCH", tag_pattern(items_[item].dir_key), "COUNT", "1000"},
               [this, gen, item](redisReply* r) {
                 if (gen != gen_) return;
                 if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                   failed_ = true;
                   step_done();
                   return;
                 }
                 Item& it = items_[item];
                 const redisReply* keys = r->element[1];
                 for (size_t k = 0; k < keys->elements; ++k) {
                   std::string_view key = reply_text(keys->element[k]);
                   if (directory_key(key) == it.dir_key) it.keys.emplace_back(key);
                 }
                 std::string next(reply_text(r->element[0]));
                 if (next != "0") {
                   scan_tag(item, std::move(next));
                   return;
                 }
                 step_done();
               });
  if (!sent) {
    failed_ = true;
    step_done();
  }
}

void Mover::copy() {
  enter(Phase::Copy);
  if (c_.node_conn(from_) == nullptr) {
    fail("the source node is unreachable");
    return;
  }
  left_ = 1;  // held until every command is sent
  copy_next_ = {0, 0};
  copy_in_flight_ = 0;
  copy_all_sent_ = false;
  for (Item& it : items_) {
    it.dumps.assign(it.keys.size(), {});
    it.ttls.assign(it.keys.size(), -2);
  }
  copy_more();
}

// Sends the next keys' DUMP and PTTL while fewer than kCopyWindow keys are in flight;
// once the last is sent, the phase's hold goes.
void Mover::copy_more() {
  ControlConn* src = c_.node_conn(from_);
  const uint64_t gen = gen_;
  auto& [i, k] = copy_next_;
  while (i < items_.size() && copy_in_flight_ < kCopyWindow) {
    if (k == items_[i].keys.size()) {
      ++i;
      k = 0;
      continue;
    }
    const std::string& key = items_[i].keys[k];
    // The PTTL's answer comes after the DUMP's (one connection, in order): it ends the key.
    const bool sent =
        src != nullptr &&
        src->command({"DUMP", key},
                     [this, gen, i, k](redisReply* r) {
                       if (gen != gen_) return;
                       if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) failed_ = true;
                       else if (r->type == REDIS_REPLY_STRING) items_[i].dumps[k].assign(r->str, r->len);
                     }) &&
        src->command({"PTTL", key}, [this, gen, i, k](redisReply* r) {
          if (gen != gen_) return;
          if (r == nullptr || r->type != REDIS_REPLY_INTEGER) failed_ = true;
          else items_[i].ttls[k] = r->integer;
          --copy_in_flight_;
          step_done();
          if (gen == gen_ && phase_ == Phase::Copy) copy_more();
        });
    counted(sent);
    if (!sent) {
      // The connection is down: nothing more goes; what is out is answered (with
      // nothing, as the connection drops) and the phase fails then.
      i = items_.size();
      break;
    }
    ++copy_in_flight_;
    ++k;
  }
  if (i == items_.size() && !copy_all_sent_) {
    copy_all_sent_ = true;
    step_done();
  }
}

// A command of the phase: sent, it is one more answer to wait for; not sent (the
// connection is down), the phase has failed.
void Mover::counted(bool sent) {
  if (sent) ++left_;
  else failed_ = true;
}

void Mover::step_done() {
  if (--left_ != 0) return;
  if (failed_) {
    failed_ = false;
    fail(phase_ == Phase::Collect   ? "a SCAN of the source failed"
         : phase_ == Phase::Copy    ? "reading the keys on the source failed"
                                    : "writing the keys on the destination failed");
    return;
  }
  switch (phase_) {
    case Phase::Collect: copy(); break;
    case Phase::Copy: restore(); break;
    case Phase::Restore: commit(); break;
    default: break;
  }
}

void Mover::restore() {
  enter(Phase::Restore);
  ControlConn* dst = c_.node_conn(to_);
  if (dst == nullptr) {
    fail("the destination node is unreachable");
    return;
  }
  left_ = 1;  // held until every call is sent
  const uint64_t gen = gen_;
  const std::string token = std::to_string(token_);
  std::vector<std::string> ttls;  // the call's TTLs, as text (argv points into them)
  std::vector<std::pair<size_t, size_t>> call;  // (item, key) of the call being built
  size_t call_bytes = 0;
  auto send = [&] {
    if (call.empty()) return;
    ttls.clear();
    for (auto [i, k] : call) ttls.push_back(std::to_string(items_[i].ttls[k] > 0 ? items_[i].ttls[k] : 0));
    const std::string nkeys = std::to_string(call.size());
    std::vector<std::string_view> argv = {"EVAL", kNodeRestore, nkeys};
    for (auto [i, k] : call) argv.push_back(items_[i].keys[k]);
    argv.push_back(token);
    for (size_t c = 0; c < call.size(); ++c) {
      argv.push_back(ttls[c]);
      argv.push_back(items_[call[c].first].dumps[call[c].second]);
    }
    counted(dst->command(argv, [this, gen](redisReply* r) {
      if (gen != gen_) return;
      if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
        if (r != nullptr) spdlog::warn("mover: RESTORE on the destination answered {}", reply_text(r));
        failed_ = true;
      }
      step_done();
    }));
    call.clear();
    call_bytes = 0;
  };
  for (size_t i = 0; i < items_.size(); ++i) {
    Item& it = items_[i];
    for (size_t k = 0; k < it.keys.size(); ++k) {
      // Not on the source (expired or flushed meanwhile), or about to expire (PTTL 0:
      // restored with no TTL it would live for ever): not copied.
      if (it.dumps[k].empty() || it.ttls[k] == -2 || it.ttls[k] == 0) {
        it.dumps[k].clear();
        continue;
      }
      it.restored_any = true;
      last_bytes_ += it.dumps[k].size();
      call.emplace_back(i, k);
      call_bytes += it.dumps[k].size();
      if (call.size() == kRestoreKeysPerCall || call_bytes >= kRestoreBytesPerCall) send();
    }
  }
  send();
  step_done();
}

// After the commit: the source's copies go. They are listed on the main server first
// (hr:moves:clean), so a mover that dies before deleting them leaves them for the next
// coordinator (clean_up), never for the sweep to mistake for orphans.
void Mover::remove_from_source(const std::vector<size_t>& committed) {
  enter(Phase::Delete);
  std::vector<std::string> keys;
  for (size_t i : committed)
    for (size_t k = 0; k < items_[i].keys.size(); ++k)
      if (!items_[i].dumps[k].empty()) keys.push_back(items_[i].keys[k]);
  if (keys.empty()) {
    finish();
    return;
  }
  const uint64_t gen = gen_;
  delete_on(from_, keys, [this, gen, keys](bool ok) {
    if (gen != gen_) return;
    if (!ok) {
      // Listed still: cleaned up later. No entry names these copies: nobody reads them.
      spdlog::warn("mover: deleting moved keys on node {} failed; cleaned up later", c_.nodes()[from_].name());
      cleanup_due_ = true;
      finish();
      return;
    }
    cleanup_set("SREM", from_, keys);
    finish();
  });
}

std::string Mover::cleanup_member(NodeIndex node, std::string_view key) const {
  std::string m = c_.nodes()[node].name();
  m += '\n';
  m.append(key);
  return m;
}

// SADD (list) or SREM (forget) of the keys' members of hr:moves:clean, in calls of 512.
void Mover::cleanup_set(const char* op, NodeIndex node, const std::vector<std::string>& keys) {
  constexpr size_t kPerCall = 512;
  for (size_t from = 0; from < keys.size(); from += kPerCall) {
    std::vector<std::string> members;
    for (size_t k = from; k < std::min(keys.size(), from + kPerCall); ++k) members.push_back(cleanup_member(node, keys[k]));
    std::vector<std::string_view> argv = {op, kMovesCleanKey};
    for (const auto& m : members) argv.push_back(m);
    clean_set_write(argv);
  }
}

// A write to hr:moves:clean: one not sent, or whose answer was lost, leaves the set
// unknown (an SREM lost keeps copies already deleted listed for good), so the
// clean-up, which reads the set and settles each member, is due again.
void Mover::clean_set_write(const std::vector<std::string_view>& argv) {
  const bool sent = c_.main().command(argv, [this](redisReply* r) {
    if (r == nullptr) cleanup_due_ = true;
  });
  if (!sent) cleanup_due_ = true;
}

// Copies a mover listed and did not delete (it died, a node failed): each goes once
// its entry, read now, names another node (or none); one whose entry names its node
// again (the move was undone) is the key itself and stays. Runs while no batch does.
void Mover::clean_up() {
  if (!c_.main().up()) return;  // still due: the next tick tries again
  enter(Phase::Cleanup);
  cleanup_due_ = false;
  const uint64_t gen = gen_;
  // Up (checked above): sent.
  (void)c_.main().command({"SRANDMEMBER", kMovesCleanKey, "512"}, [this, gen](redisReply* r) {
    if (gen != gen_) return;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
      enter(Phase::Idle);
      if (r == nullptr) cleanup_due_ = true;
      return;
    }
    auto members = std::make_shared<std::vector<std::string>>();
    for (size_t i = 0; i < r->elements; ++i) members->emplace_back(reply_text(r->element[i]));
    auto left = std::make_shared<size_t>(members->size());
    auto one_done = [this, members, left] {
      if (--*left != 0) return;
      enter(Phase::Idle);
      if (members->size() >= 512) cleanup_due_ = true;  // once more: until the set is empty
    };
    for (size_t i = 0; i < members->size(); ++i) {
      const std::string& m = (*members)[i];
      const size_t nl = m.find('\n');
      const std::string key = nl == std::string::npos ? std::string() : m.substr(nl + 1);
      const std::string_view dk = directory_key(key);
      const bool sent = c_.main().command({"HGET", MainStore::bucket_name(dk), dk}, [this, gen, members, i, nl,
                                                                                     one_done](redisReply* e) {
        if (gen != gen_) return;
        if (e == nullptr) cleanup_due_ = true;  // unknown: tried again
        const std::string& m = (*members)[i];
        std::optional<NodeIndex> found;
        if (nl != std::string::npos) found = c_.nodes().find(std::string_view(m).substr(0, nl));
        scripts::EntryValue ev;
        const bool entry = e != nullptr && e->type == REDIS_REPLY_STRING && scripts::parse_entry_value(reply_text(e), ev);
        if (e != nullptr && found.has_value()) {
          const NodeIndex node = found.value();
          const std::string key = m.substr(nl + 1);
          if (entry && ev.node == c_.nodes()[node].name() && ev.moving_to.empty()) {
            clean_set_write({"SREM", kMovesCleanKey, m});  // undone: the key itself
          } else if (!entry || (ev.moving_to.empty() && ev.node != c_.nodes()[node].name())) {
            delete_on(node, {key}, [this, gen, m](bool ok) {
              if (gen != gen_) return;
              if (ok) clean_set_write({"SREM", kMovesCleanKey, m});
              else cleanup_due_ = true;
            });
          }  // still moving: its batch lists it again
        }
        one_done();
      });
      if (!sent) {
        cleanup_due_ = true;
        one_done();
      }
    }
  });
}

void Mover::delete_on(NodeIndex node, const std::vector<std::string>& keys, std::function<void(bool)> done) {
  ControlConn* conn = c_.node_conn(node);
  if (conn == nullptr) {
    done(false);
    return;
  }
  constexpr size_t kPerCall = 256;
  // `done` runs once, after the last answer: the count is held while calls are sent,
  // and no keys, or a call not sent, still ends in it.
  struct State {
    size_t left = 1;
    bool ok = true;
    std::function<void(bool)> done;
    void step() {
      if (--left == 0) done(ok);
    }
  };
  auto st = std::make_shared<State>();
  st->done = std::move(done);
  const std::string token = std::to_string(token_);
  for (size_t from = 0; from < keys.size(); from += kPerCall) {
    const size_t n = std::min(kPerCall, keys.size() - from);
    std::vector<std::string_view> argv = {"EVAL", kNodeUnlink};
    const std::string count = std::to_string(n);
    argv.push_back(count);
    for (size_t k = 0; k < n; ++k) argv.push_back(keys[from + k]);
    argv.push_back(token);
    const bool sent = conn->command(argv, [st](redisReply* r) {
      if (r == nullptr || r->type == REDIS_REPLY_ERROR) st->ok = false;
      st->step();
    });
    if (sent) ++st->left;
    else st->ok = false;
  }
  st->step();
}

void Mover::commit() {
  enter(Phase::Commit);
  std::vector<size_t> all(items_.size());
  std::vector<std::string> copied;
  for (size_t i = 0; i < all.size(); ++i) {
    all[i] = i;
    for (size_t k = 0; k < items_[i].keys.size(); ++k)
      if (!items_[i].dumps[k].empty()) copied.push_back(items_[i].keys[k]);
  }
  // Listed before the commit, on the same connection: committed, their source copies
  // are known to go whatever happens to this mover.
  cleanup_set("SADD", from_, copied);
  end_moves('C', all, true);
}

// The move script: commit ('C') or undo ('U') of the given items.
void Mover::end_moves(char mode, const std::vector<size_t>& which, bool then_idle) {
  if (which.empty()) {
    if (then_idle) finish();
    return;
  }
  resp::Buffer call;
  const size_t n = which.size();
  scripts::encode_head(call, Script::MoveEnd, n, n + 4 + 2 * n);
  for (size_t i : which) resp::add_bulk(call, MainStore::bucket_name(items_[i].dir_key));
  resp::add_bulk(call, kEventsChannel);
  resp::add_bulk(call, c_.store().origin());
  resp::add_bulk(call, c_.lease_value());
  resp::add_bulk(call, std::string_view(&mode, 1));
  for (size_t i : which) {
    resp::add_bulk(call, items_[i].dir_key);
    resp::add_bulk(call, items_[i].value);
  }
  const uint64_t gen = gen_;
  const bool sent = c_.main().command_encoded(call.view(), [this, gen, mode, which, then_idle](redisReply* r) {
    if (gen != gen_) return;
    if (r != nullptr && c_.lease_lost(r)) return;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
      // Unknown whether it ran: what is still moving is finished later (the sweep
      // finds an entry undone mid-batch; the batch's others go on).
      ++counters_.errors;
      if (then_idle) requeue("the end of a move was not answered");
      return;
    }
    const auto changed = static_cast<uint64_t>(r->element[0]->integer);
    if (mode == 'U') {
      counters_.entries_undone += changed;
      if (then_idle) enter(Phase::Idle);
      return;
    }
    // Commits refused because a FLUSHALL began during the move: the destination's
    // copies may have come after its flush, so they go, and the entries go back
    // to their source (emptied by the flush, or by this move).
    std::vector<size_t> flushed;
    for (size_t e = 1; e < r->elements; ++e) flushed.push_back(which[static_cast<size_t>(r->element[e]->integer) - 1]);
    (finishing_ ? counters_.entries_finished : counters_.entries_moved) += changed;
    std::vector<size_t> committed;
    for (size_t i : which) {
      if (std::find(flushed.begin(), flushed.end(), i) != flushed.end()) continue;
      committed.push_back(i);
      last_keys_ += items_[i].keys.size();
      counters_.keys_moved += items_[i].keys.size();
      // Nothing to copy (it expired meanwhile): the entry retires on its new node.
      if (!finishing_ && !items_[i].restored_any && !is_tag(items_[i].dir_key)) c_.retire(items_[i].dir_key, to_);
    }
    if (flushed.empty()) {
      remove_from_source(committed);
      return;
    }
    // The source keeps its copies until a commit (emptied by the FLUSHALL, or not if it
    // failed): the destination's go, and the entries go back there.
    std::vector<std::string> keys;
    for (size_t i : flushed)
      for (const auto& k : items_[i].keys) keys.push_back(k);
    delete_on(to_, keys, [this, gen, flushed, keys](bool ok) {
      if (gen != gen_) return;
      if (!ok) {
        requeue("deleting copies after a FLUSHALL failed");
        return;
      }
      cleanup_set("SREM", from_, keys);
      end_moves('U', flushed, true);
    });
  });
  if (!sent) {
    ++counters_.errors;
    if (then_idle) requeue("the main server is unreachable");
  }
}

void Mover::finish() {
  for (const auto& it : items_)
    for (const auto& d : it.dumps) counters_.bytes_moved += d.size();
  enter(Phase::Idle);
}

void Mover::undo(const std::string& why) {
  spdlog::warn("mover: {} entries go back to node {}: {}", items_.size(), c_.nodes()[from_].name(), why);
  enter(Phase::Undo);
  std::vector<size_t> all(items_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  // What this batch, or (finishing) an earlier attempt, may have restored there.
  std::vector<std::string> restored;
  for (auto& it : items_)
    if (it.restored_any || finishing_)
      for (const auto& k : it.keys) restored.push_back(k);
  if (restored.empty()) {
    end_moves('U', all, true);
    return;
  }
  const uint64_t gen = gen_;
  delete_on(to_, restored, [this, gen, all](bool ok) {
    if (gen != gen_) return;
    if (!ok) {
      requeue("deleting the destination's copies failed");  // copies on both: never lost
      return;
    }
    end_moves('U', all, true);
  });
}

// Until its commit a batch can always be undone: the source keeps every key.
void Mover::fail(const std::string& why) {
  ++counters_.errors;
  undo(why);
}

// The entries stay moving (their commands wait): finished by a later batch.
void Mover::requeue(const std::string& why) {
  spdlog::warn("mover: moving from {} to {}: {}; trying again later", c_.nodes()[from_].name(),
               c_.nodes()[to_].name(), why);
  for (auto& it : items_)
    if (interrupted_keys_.insert(it.dir_key).second) interrupted_.emplace_back(it.dir_key, it.value);
  retry_after_ms_ = uv_now(c_.loop()) + 1000;
  cleanup_due_ = true;  // a commit may have run unanswered: its listed source copies go
  enter(Phase::Idle);
}

}  // namespace headroom::balancer
