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

// The data-node side of the fence (see mover.h). Each runs on a node, atomically:
// once a newer coordinator's fence is there, an older mover's writes are refused.
constexpr std::string_view kNodeFence = R"(
redis.call('SELECT', 1)
local f = tonumber(redis.call('GET', 'hr:mover:fence') or '0')
if tonumber(ARGV[1]) > f then redis.call('SET', 'hr:mover:fence', ARGV[1]) end
return 1
)";
constexpr std::string_view kNodeRestore = R"(
redis.call('SELECT', 1)
local f = tonumber(redis.call('GET', 'hr:mover:fence') or '0')
redis.call('SELECT', 0)
if tonumber(ARGV[1]) < f then return redis.error_reply('FENCED a newer coordinator moves keys now') end
return redis.call('RESTORE', KEYS[1], ARGV[2], ARGV[3], 'REPLACE')
)";
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

Mover::Mover(Coordinator& c, uint64_t barrier_timeout_ms) : c_(c), barrier_timeout_ms_(barrier_timeout_ms) {}

void Mover::begin(uint64_t token) {
  end();
  token_ = token;
  fenced_.assign(c_.nodes().size(), 0);
  for (NodeIndex i = 0; i < c_.nodes().size(); ++i) node_up(i);
}

void Mover::end() {
  ++gen_;  // every callback of the batch in flight is ignored from now
  phase_ = Phase::Idle;
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
  conn->command({"EVAL", kNodeFence, "0", std::to_string(token)}, [this, node, token](redisReply* r) {
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
  if (busy() || token_ == 0 || from == to || dir_keys.empty() || !fenced(from) || !fenced(to) ||
      c_.node_conn(from) == nullptr || c_.node_conn(to) == nullptr || !c_.main().up())
    return false;
  ++gen_;
  phase_ = Phase::Begin;
  last_bytes_ = last_keys_ = 0;
  from_ = from;
  to_ = to;
  finishing_ = source_touched_ = failed_ = false;
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
  c_.main().command_encoded(call.view(), [this, gen](redisReply* r) {
    if (gen == gen_) begun(r);
  });
  return true;
}

void Mover::begun(redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
    if (r != nullptr && c_.lease_lost(r)) return;
    spdlog::warn("mover: the begin of a move was not answered");
    ++counters_.errors;
    phase_ = Phase::Idle;  // if it ran, the sweep finds its entries moving and they are finished
    return;
  }
  if (r->elements < 2 || r->element[0]->type != REDIS_REPLY_INTEGER || r->element[0]->integer == 0) {
    phase_ = Phase::Idle;  // no entry could move (changed meanwhile, held, or flushed)
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
  phase_ = Phase::Barrier;
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
  if (phase_ == Phase::Barrier) {
    if (c_.barrier() >= seq_) {
      collect();
    } else if (!finishing_ && uv_now(c_.loop()) - begun_ms_ > barrier_timeout_ms_) {
      // A proxy has not acknowledged (paused, slow, cut off): rather than hold the
      // keys' commands longer, the entries go back where they are. Nothing was copied.
      undo("not every proxy acknowledged the move in time");
    }
    return;
  }
  if (busy() || interrupted_.empty() || uv_now(c_.loop()) < retry_after_ms_) return;
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
      c_.node_conn(*to) == nullptr)
    return;  // later (a node is down, or its fence is not confirmed yet)
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
  source_touched_ = failed_ = false;
  begun_ms_ = uv_now(c_.loop());
  // Only entries still exactly as found: the mover is the only writer of moving
  // entries, and this check comes after anything of its own that could change them.
  phase_ = Phase::Begin;
  left_ = items_.size();
  const uint64_t gen = gen_;
  auto still = std::make_shared<std::vector<bool>>(items_.size(), false);
  for (size_t i = 0; i < items_.size(); ++i) {
    c_.main().command({"HGET", MainStore::bucket_name(items_[i].dir_key), items_[i].dir_key},
                      [this, gen, i, still](redisReply* r) {
                        if (gen != gen_) return;
                        (*still)[i] = r != nullptr && r->type == REDIS_REPLY_STRING && reply_text(r) == items_[i].value;
                        if (--left_ != 0) return;
                        std::vector<Item> kept;
                        for (size_t k = 0; k < items_.size(); ++k)
                          if ((*still)[k]) kept.push_back(std::move(items_[k]));
                        items_ = std::move(kept);
                        if (items_.empty()) {
                          phase_ = Phase::Idle;
                          return;
                        }
                        phase_ = Phase::Barrier;
                        c_.watch_barrier();
                        tick();
                      });
  }
}

// --- the copy ---------------------------------------------------------------------------

void Mover::collect() {
  phase_ = Phase::Collect;
  left_ = 0;
  for (size_t i = 0; i < items_.size(); ++i) {
    if (is_tag(items_[i].dir_key)) {
      ++left_;
      scan_tag(i, "0");
    } else {
      items_[i].keys = {items_[i].dir_key};
    }
  }
  if (left_ == 0) copy();
}

void Mover::scan_tag(size_t item, std::string cursor) {
  ControlConn* src = c_.node_conn(from_);
  if (src == nullptr) {
    fail("the source node is unreachable");
    return;
  }
  const uint64_t gen = gen_;
  src->command({"SCAN", cursor, "MATCH", tag_pattern(items_[item].dir_key), "COUNT", "1000"},
               [this, gen, item](redisReply* r) {
                 if (gen != gen_) return;
                 if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
                   fail("a SCAN of the source failed");
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
                 if (--left_ == 0) copy();
               });
}

void Mover::copy() {
  if (failed_) return;
  phase_ = Phase::Copy;
  ControlConn* src = c_.node_conn(from_);
  if (src == nullptr) {
    fail("the source node is unreachable");
    return;
  }
  left_ = 0;
  const uint64_t gen = gen_;
  for (size_t i = 0; i < items_.size(); ++i) {
    Item& it = items_[i];
    it.dumps.assign(it.keys.size(), {});
    it.ttls.assign(it.keys.size(), -2);
    for (size_t k = 0; k < it.keys.size(); ++k) {
      left_ += 2;
      src->command({"DUMP", it.keys[k]}, [this, gen, i, k](redisReply* r) {
        if (gen != gen_) return;
        if (r == nullptr || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) failed_ = true;
        else if (r->type == REDIS_REPLY_STRING) items_[i].dumps[k].assign(r->str, r->len);
        step_done();
      });
      src->command({"PTTL", it.keys[k]}, [this, gen, i, k](redisReply* r) {
        if (gen != gen_) return;
        if (r == nullptr || r->type != REDIS_REPLY_INTEGER) failed_ = true;
        else items_[i].ttls[k] = r->integer;
        step_done();
      });
    }
  }
  if (left_ == 0) restore();
}

void Mover::step_done() {
  if (--left_ != 0) return;
  if (failed_) {
    failed_ = false;
    fail(phase_ == Phase::Copy      ? "reading the keys on the source failed"
         : phase_ == Phase::Restore ? "writing the keys on the destination failed"
                                    : "deleting the keys on the source failed");
    return;
  }
  switch (phase_) {
    case Phase::Copy: restore(); break;
    case Phase::Restore: remove_from_source(); break;
    default: break;
  }
}

void Mover::restore() {
  phase_ = Phase::Restore;
  ControlConn* dst = c_.node_conn(to_);
  if (dst == nullptr) {
    fail("the destination node is unreachable");
    return;
  }
  left_ = 0;
  const uint64_t gen = gen_;
  const std::string token = std::to_string(token_);
  for (size_t i = 0; i < items_.size(); ++i) {
    Item& it = items_[i];
    for (size_t k = 0; k < it.keys.size(); ++k) {
      if (it.dumps[k].empty() || it.ttls[k] == -2) continue;  // not on the source (expired, or moved already)
      const std::string ttl = std::to_string(it.ttls[k] > 0 ? it.ttls[k] : 0);
      ++left_;
      it.restored_any = true;
      last_bytes_ += it.dumps[k].size();
      dst->command({"EVAL", kNodeRestore, "1", it.keys[k], token, ttl, it.dumps[k]}, [this, gen](redisReply* r) {
        if (gen != gen_) return;
        if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
          if (r != nullptr) spdlog::warn("mover: RESTORE on the destination answered {}", reply_text(r));
          failed_ = true;
        }
        step_done();
      });
    }
  }
  if (left_ == 0) remove_from_source();
}

void Mover::remove_from_source() {
  phase_ = Phase::Delete;
  std::vector<std::string> keys;
  for (auto& it : items_)
    for (size_t k = 0; k < it.keys.size(); ++k)
      if (!it.dumps[k].empty()) keys.push_back(it.keys[k]);
  if (keys.empty()) {
    commit();
    return;
  }
  source_touched_ = true;
  const uint64_t gen = gen_;
  delete_on(from_, keys, [this, gen](bool ok) {
    if (gen != gen_) return;
    // A key left on the source is a stale copy no entry will name once committed:
    // the destination has every key in full. Its copy is reported by the sweep.
    if (!ok) spdlog::warn("mover: deleting moved keys on node {} failed; their old copies stay there",
                          c_.nodes()[from_].name());
    commit();
  });
}

void Mover::delete_on(NodeIndex node, const std::vector<std::string>& keys, std::function<void(bool)> done) {
  ControlConn* conn = c_.node_conn(node);
  if (conn == nullptr) {
    done(false);
    return;
  }
  constexpr size_t kPerCall = 256;
  auto left = std::make_shared<size_t>(0);
  auto ok = std::make_shared<bool>(true);
  const std::string token = std::to_string(token_);
  for (size_t from = 0; from < keys.size(); from += kPerCall) {
    const size_t n = std::min(kPerCall, keys.size() - from);
    std::vector<std::string_view> argv = {"EVAL", kNodeUnlink};
    const std::string count = std::to_string(n);
    argv.push_back(count);
    for (size_t k = 0; k < n; ++k) argv.push_back(keys[from + k]);
    argv.push_back(token);
    ++*left;
    conn->command(argv, [left, ok, done](redisReply* r) {
      if (r == nullptr || r->type == REDIS_REPLY_ERROR) *ok = false;
      if (--*left == 0) done(*ok);
    });
  }
}

void Mover::commit() {
  phase_ = Phase::Commit;
  std::vector<size_t> all(items_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
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
      // Unknown whether it ran: the sweep finds what is still moving, and finishes it.
      ++counters_.errors;
      spdlog::warn("mover: the end of a move was not answered; the sweep will find it");
      phase_ = Phase::Idle;
      return;
    }
    const auto changed = static_cast<uint64_t>(r->element[0]->integer);
    if (mode == 'U') {
      counters_.entries_undone += changed;
      if (then_idle) phase_ = Phase::Idle;
      return;
    }
    // Commits refused because a FLUSHALL began during the move: the destination's
    // copies may have come after its flush, so they go, and the entries go back
    // to their source (emptied by the flush, or by this move).
    std::vector<size_t> flushed;
    for (size_t e = 1; e < r->elements; ++e) flushed.push_back(which[static_cast<size_t>(r->element[e]->integer) - 1]);
    (finishing_ ? counters_.entries_finished : counters_.entries_moved) += changed;
    for (size_t i : which) {
      if (std::find(flushed.begin(), flushed.end(), i) != flushed.end()) continue;
      last_keys_ += items_[i].keys.size();
      counters_.keys_moved += items_[i].keys.size();
      // Nothing to copy (it expired meanwhile): the entry retires on its new node.
      if (!finishing_ && !items_[i].restored_any && !is_tag(items_[i].dir_key)) c_.retire(items_[i].dir_key, to_);
    }
    if (flushed.empty()) {
      finish();
      return;
    }
    std::vector<std::string> keys;
    for (size_t i : flushed)
      for (const auto& k : items_[i].keys) keys.push_back(k);
    delete_on(to_, keys, [this, gen, flushed](bool ok) {
      if (gen != gen_) return;
      if (!ok) {
        phase_ = Phase::Idle;  // still moving: the sweep finds them, the next batch tries again
        return;
      }
      end_moves('U', flushed, true);
    });
  });
  if (!sent) {
    ++counters_.errors;
    phase_ = Phase::Idle;
  }
}

void Mover::finish() {
  for (const auto& it : items_)
    for (const auto& d : it.dumps) counters_.bytes_moved += d.size();
  phase_ = Phase::Idle;
}

void Mover::undo(const std::string& why) {
  spdlog::warn("mover: {} entries go back to node {}: {}", items_.size(), c_.nodes()[from_].name(), why);
  phase_ = Phase::Undo;
  std::vector<size_t> all(items_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<std::string> restored;
  for (auto& it : items_)
    if (it.restored_any)
      for (const auto& k : it.keys) restored.push_back(k);
  if (restored.empty()) {
    end_moves('U', all, true);
    return;
  }
  const uint64_t gen = gen_;
  delete_on(to_, restored, [this, gen, all](bool ok) {
    if (gen != gen_) return;
    if (!ok) {
      phase_ = Phase::Idle;  // still moving, copies on both: finished later, never lost
      return;
    }
    end_moves('U', all, true);
  });
}

void Mover::fail(const std::string& why) {
  ++counters_.errors;
  if (finishing_ || source_touched_) {
    // Some keys may be only on the destination: the batch can only go forward. The
    // entries stay moving (their commands wait); the sweep finds them again.
    spdlog::warn("mover: moving from {} to {}: {}; trying again later", c_.nodes()[from_].name(),
                 c_.nodes()[to_].name(), why);
    for (auto& it : items_)
      if (interrupted_keys_.insert(it.dir_key).second) interrupted_.emplace_back(it.dir_key, it.value);
    retry_after_ms_ = uv_now(c_.loop()) + 1000;
    phase_ = Phase::Idle;
    return;
  }
  undo(why);
}

}  // namespace headroom::balancer
