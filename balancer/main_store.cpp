#include "balancer/main_store.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>
#include <random>

#include "resp/reply_writer.h"

namespace headroom::balancer {

namespace {

// Places a batch of keys, each unless it has an entry already. The reply lists only
// the exceptions, as {i, node, ...} for each KEYS[i] that had an entry (naming its
// node): the common case, every key placed as asked, is an empty reply. One PUBLISH
// tells the other proxies of every key it placed: 'B' origin, then per key
// "<key length>:<node>\n<key>" (keys are binary-safe; node names hold no '\n').
// The proxy sends that message ready-made for the common case, because building it
// here costs the main server more than the placements themselves (Lua formats each
// length with sprintf and interns each piece); the script rebuilds it only when some
// keys had an entry.
// KEYS: the keys' buckets; ARGV: channel, 'B' origin, the message naming every key,
// the layout marker's key and this build's layout (see kLayoutScript), then key, node
// for each KEYS[i].
constexpr std::string_view kPlaceScript = R"(
local layout = redis.call('GET', ARGV[4])
if not layout then
  redis.call('SET', ARGV[4], ARGV[5])
elseif layout ~= ARGV[5] then
  return redis.error_reply('LAYOUT the directory has layout ' .. layout .. ', this proxy uses ' .. ARGV[5])
end
local taken = {}
for i = 1, #KEYS do
  if redis.call('HSETNX', KEYS[i], ARGV[2 * i + 4], ARGV[2 * i + 5]) == 0 then
    taken[#taken + 1] = i
    taken[#taken + 1] = redis.call('HGET', KEYS[i], ARGV[2 * i + 4])
  end
end
if #taken == 0 then
  redis.call('PUBLISH', ARGV[1], ARGV[3])
elseif #taken < 2 * #KEYS then
  local placed, t = {ARGV[2]}, 1
  for i = 1, #KEYS do
    if taken[t] == i then
      t = t + 2
    else
      local key = ARGV[2 * i + 4]
      placed[#placed + 1] = #key .. ':' .. ARGV[2 * i + 5] .. '\n' .. key
    end
  end
  redis.call('PUBLISH', ARGV[1], table.concat(placed))
end
return taken
)";

// Placements per script call, and script calls in flight: a burst of new keys is
// placed in a few calls rather than one per key (the main server's per-call cost
// bounded new-key writes at ~134k/s), while a lone key still goes at once.
constexpr size_t kMaxBatch = 256;
constexpr uint32_t kMaxBatchesInFlight = 2;
constexpr size_t kMaxSpareBatches = 4;
constexpr std::string_view kPlacementCutOff = "ERR main server unavailable: cannot place new keys";

// KEYS[1] bucket; ARGV: dir_key, node, channel, origin.
constexpr std::string_view kRemoveScript = R"(
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[3], 'D' .. ARGV[4] .. ARGV[2] .. '\n' .. ARGV[1])
  return 1
end
return 0
)";

// ARGV: bucket count, channel, origin.
constexpr std::string_view kFlushScript = R"(
for i = 0, tonumber(ARGV[1]) - 1 do redis.call('UNLINK', 'hr:dir:' .. i) end
redis.call('PUBLISH', ARGV[2], 'F' .. ARGV[3])
return 1
)";

// The directory's layout (bucket count and hash), recorded on the main server: a
// proxy built with another layout would look for every entry in the wrong bucket, so
// it refuses to start, and its placements are refused, rather than misroute. Whoever
// finds no marker (a new main server, or one flushed directly) records its own.
constexpr std::string_view kLayoutKey = "hr:dir:layout";
// KEYS[1] marker; ARGV[1] this build's layout. Returns the directory's layout.
constexpr std::string_view kLayoutScript = R"(
local layout = redis.call('GET', KEYS[1])
if layout then return layout end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
)";

constexpr size_t kOriginLen = 16;

std::string random_origin() {
  std::random_device rd;
  uint64_t v = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(uv_hrtime());
  char buf[kOriginLen + 1];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, kOriginLen);
}

constexpr uint32_t kLoadWindow = 256;  // HGETALLs in flight while loading
constexpr uint64_t kLoadRetryMs = 1000;  // after a load that failed

}  // namespace

MainStore::MainStore(uv_loop_t* loop, const conf::BackendConfig& main, NodeRegistry& nodes, Directory& dir,
                     const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts)
    : loop_(loop),
      config_(main),
      nodes_(nodes),
      dir_(dir),
      origin_(random_origin()),
      layout_("buckets=" + std::to_string(kBuckets) + " hash=fnv1a64") {
  cmd_ = std::make_unique<ControlConn>(loop_, "main " + main.name, main.address, main.password, tls, timeouts);
  sub_ = std::make_unique<ControlConn>(loop_, "main " + main.name + " (events)", main.address, main.password, tls,
                                       timeouts);
  retry_timer_ = new uv_timer_t;
  uv_timer_init(loop_, retry_timer_);
  retry_timer_->data = this;
}

MainStore::~MainStore() {
  stop();
  uv_close(reinterpret_cast<uv_handle_t*>(retry_timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

std::string MainStore::bucket_name(std::string_view dir_key) {
  return bucket_name(static_cast<uint32_t>(stable_hash(dir_key) % kBuckets));
}

std::string MainStore::bucket_name(uint32_t bucket) {
  char name[24] = "hr:dir:";  // short enough for std::string's inline storage: no allocation
  auto r = std::to_chars(name + 7, name + sizeof name, bucket);
  return std::string(name, r.ptr);
}

void MainStore::start(std::function<void()> on_loaded, std::function<void(const std::string&)> on_fatal) {
  on_loaded_ = std::move(on_loaded);
  on_fatal_ = std::move(on_fatal);
  // Subscribed first, loaded second, every time either connection comes back: a
  // change made during the load arrives as an event, and one made while either was
  // down is in the load.
  sub_->start([this](bool up) {
    subscribed_ = false;
    current_ = false;
    if (up) sub_->subscribe(kEventsChannel, [this](redisReply* r) { on_event(r); });
  });
  cmd_->start([this](bool up) {
    if (up) {
      start_load();
    } else {
      current_ = false;
      fail_placements();
    }
  });
}

void MainStore::stop() {
  uv_timer_stop(retry_timer_);
  cmd_->stop();
  sub_->stop();
  fail_placements();  // cmd_ reports no state change when stopped
}

// The connection is gone: batches in flight got a null reply already; whatever is
// still queued fails here.
void MainStore::fail_placements() {
  auto failed = std::move(batches_);
  batches_.clear();
  batches_in_flight_ = 0;
  for (auto& b : failed)
    for (auto& item : b.items) item.fn(PlaceResult{-1, std::string(kPlacementCutOff)});
}

void MainStore::start_load() {
  if (!cmd_->up() || !subscribed_) return;  // the other one's arrival starts it
  const uint64_t gen = ++load_generation_;
  load_next_bucket_ = 0;
  load_in_flight_ = 0;
  cmd_->command({"EVAL", kLayoutScript, "1", kLayoutKey, layout_}, [this, gen](redisReply* r) {
    if (gen != load_generation_ || r == nullptr) return;  // superseded, or the connection is gone
    if (r->type == REDIS_REPLY_ERROR) {
      retry_load("checking the directory's layout answered " + std::string(r->str, r->len));
      return;
    }
    std::string_view theirs = r->type == REDIS_REPLY_STRING ? std::string_view(r->str, r->len) : "unreadable";
    if (theirs != layout_) {
      if (on_fatal_)
        on_fatal_("the directory on main server " + config_.name + " has layout '" + std::string(theirs) +
                  "' and this headroom reads '" + layout_ + "': it would not find the keys placed there");
      return;
    }
    dir_.begin_epoch();
    load_next();
  });
}

// A load that cannot complete: start over in a while.
void MainStore::retry_load(const std::string& why) {
  spdlog::warn("directory load failed: {}; retrying in {} ms", why, kLoadRetryMs);
  ++load_generation_;
  load_in_flight_ = 0;
  uv_timer_start(retry_timer_, [](uv_timer_t* t) { static_cast<MainStore*>(t->data)->start_load(); }, kLoadRetryMs,
                 0);
}

void MainStore::load_next() {
  uint64_t gen = load_generation_;
  while (load_in_flight_ < kLoadWindow && load_next_bucket_ < kBuckets) {
    std::string bucket = bucket_name(load_next_bucket_++);
    const uint64_t at = ++sent_;
    bool sent = cmd_->command({"HGETALL", bucket}, [this, gen, at](redisReply* r) {
      if (gen != load_generation_) return;  // a newer load took over
      --load_in_flight_;
      if (r == nullptr) return;  // connection lost; a new load starts on reconnect
      if (r->type == REDIS_REPLY_ERROR) {
        // A bucket that does not load makes the whole load worthless: its end would
        // drop every entry of that bucket.
        retry_load("HGETALL answered " + std::string(r->str, r->len));
        return;
      }
      if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
          std::string_view key(r->element[i]->str, r->element[i]->len);
          std::string_view node(r->element[i + 1]->str, r->element[i + 1]->len);
          if (auto idx = nodes_.find(node)) {
            if (!overtaken(key, at)) dir_.set(key, *idx);
          } else {
            spdlog::warn("directory names unknown node '{}' for a key; entry ignored", node);
          }
        }
      }
      if (load_next_bucket_ < kBuckets) {
        load_next();
      } else if (load_in_flight_ == 0) {
        size_t gone = dir_.end_epoch();
        current_ = subscribed_ && cmd_->up();
        spdlog::info("directory loaded: {} entries{}", dir_.size(),
                     gone ? " (" + std::to_string(gone) + " deleted meanwhile dropped)" : std::string());
        if (!loaded_) {
          loaded_ = true;
          if (on_loaded_) on_loaded_();
        }
      }
    });
    if (!sent) return;
    ++load_in_flight_;
  }
}

void MainStore::on_event(redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  std::string_view kind(r->element[0]->str, r->element[0]->len);
  if (kind == "subscribe") {
    subscribed_ = true;
    start_load();
    return;
  }
  if (kind != "message" || r->element[2]->type != REDIS_REPLY_STRING) return;
  std::string_view msg(r->element[2]->str, r->element[2]->len);
  if (msg.size() < 1 + kOriginLen) return;
  if (msg.substr(1, kOriginLen) == origin_) return;  // ours: applied already, in order
  if (msg[0] == 'F') {
    dir_.clear();
    return;
  }
  std::string_view rest = msg.substr(1 + kOriginLen);
  if (msg[0] == 'B') {
    apply_placed(rest);
    return;
  }
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return;
  std::string_view node = rest.substr(0, nl);
  std::string_view key = rest.substr(nl + 1);
  if (auto idx = nodes_.find(node); idx && msg[0] == 'D') dir_.erase_if(key, *idx);
}

// A batch event's entries: "<key length>:<node>\n<key>" each.
void MainStore::apply_placed(std::string_view entries) {
  while (!entries.empty()) {
    size_t colon = entries.find(':');
    size_t nl = entries.find('\n');
    if (colon == std::string_view::npos || nl == std::string_view::npos || nl < colon) return;
    size_t len = 0;
    for (char c : entries.substr(0, colon)) {
      if (c < '0' || c > '9') return;
      len = len * 10 + static_cast<size_t>(c - '0');
    }
    std::string_view node = entries.substr(colon + 1, nl - colon - 1);
    if (len > entries.size() - nl - 1) return;
    std::string_view key = entries.substr(nl + 1, len);
    if (auto idx = nodes_.find(node)) dir_.set(key, *idx);
    entries.remove_prefix(nl + 1 + len);
  }
}

bool MainStore::place(std::string_view dir_key, NodeIndex node, PlaceFn fn) {
  if (!cmd_->up()) return false;
  Batch& b = filling_batch();
  b.items.push_back({static_cast<uint32_t>(b.keys.size()), static_cast<uint32_t>(dir_key.size()), node, std::move(fn)});
  b.keys.append(dir_key);
  send_batches();
  return true;
}

// The batch new placements join: the last one, unless it is sent or full.
MainStore::Batch& MainStore::filling_batch() {
  if (batches_.size() > batches_in_flight_ && batches_.back().items.size() < kMaxBatch) return batches_.back();
  if (spare_batches_.empty()) {
    batches_.emplace_back();
  } else {
    batches_.push_back(std::move(spare_batches_.back()));
    spare_batches_.pop_back();
  }
  return batches_.back();
}

// Sends waiting batches while fewer than kMaxBatchesInFlight await their reply.
void MainStore::send_batches() {
  while (batches_in_flight_ < kMaxBatchesInFlight && batches_in_flight_ < batches_.size()) {
    const Batch& b = batches_[batches_in_flight_];
    const auto n = static_cast<int64_t>(b.items.size());
    event_.assign(1, 'B');
    event_ += origin_;
    const size_t prefix_len = event_.size();
    for (const auto& item : b.items) {
      char digits[24];
      auto r = std::to_chars(digits, digits + sizeof digits, item.key_len);
      event_.append(digits, r.ptr);
      event_ += ':';
      event_ += nodes_[item.node].name();
      event_ += '\n';
      event_ += b.key(item);
    }
    script_call_.clear();
    resp::add_array_header(script_call_, 3 + n + 5 + 2 * n);
    resp::add_bulk(script_call_, "EVAL");
    resp::add_bulk(script_call_, kPlaceScript);
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, n);
    resp::add_bulk(script_call_, std::string_view(digits, static_cast<size_t>(r.ptr - digits)));
    for (const auto& item : b.items) resp::add_bulk(script_call_, bucket_name(b.key(item)));
    resp::add_bulk(script_call_, kEventsChannel);
    resp::add_bulk(script_call_, std::string_view(event_).substr(0, prefix_len));
    resp::add_bulk(script_call_, event_);
    resp::add_bulk(script_call_, kLayoutKey);
    resp::add_bulk(script_call_, layout_);
    for (const auto& item : b.items) {
      resp::add_bulk(script_call_, b.key(item));
      resp::add_bulk(script_call_, nodes_[item.node].name());
    }
    const uint64_t at = ++sent_;
    batches_[batches_in_flight_].sent_at = at;
    if (!cmd_->command_encoded(script_call_.view(), [this, at](redisReply* reply) { on_batch_reply(at, reply); }))
      return;  // not connected: cmd_'s state callback fails what waits
    ++batches_in_flight_;
  }
}

namespace {
// The script's reply: {i, node, ...} for the keys that had an entry, i ascending.
bool valid_exceptions(const redisReply* r, size_t batch_size) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) return false;
  long long last = 0;
  for (size_t j = 0; j < r->elements; j += 2) {
    const redisReply* i = r->element[j];
    if (i->type != REDIS_REPLY_INTEGER || i->integer <= last || i->integer > static_cast<long long>(batch_size))
      return false;
    if (r->element[j + 1]->type != REDIS_REPLY_STRING) return false;
    last = i->integer;
  }
  return true;
}
}  // namespace

void MainStore::on_batch_reply(uint64_t sent_at, redisReply* r) {
  if (batches_.empty() || batches_.front().sent_at != sent_at) return;  // failed already
  Batch b = std::move(batches_.front());
  batches_.pop_front();
  --batches_in_flight_;

  std::string error;
  if (r == nullptr) {
    error = kPlacementCutOff;
  } else if (r->type == REDIS_REPLY_ERROR) {
    error = "ERR main server refused placement: " + std::string(r->str, r->len);
  } else if (!valid_exceptions(r, b.items.size())) {
    error = "ERR main server refused placement: unexpected reply";
  }
  // The waiters may place more keys meanwhile: those join later batches.
  size_t next_exception = 0;
  for (size_t i = 0; i < b.items.size(); ++i) {
    auto& item = b.items[i];
    PlaceResult res;
    if (!error.empty()) {
      res.error = error;
    } else if (next_exception < r->elements && r->element[next_exception]->integer == static_cast<long long>(i + 1)) {
      const redisReply* name = r->element[next_exception + 1];
      next_exception += 2;
      if (auto idx = nodes_.find(std::string_view(name->str, name->len))) res.node = *idx;
      else res.error = "ERR directory places this key on unknown node '" + std::string(name->str, name->len) + "'";
    } else {
      res.node = item.node;
    }
    // The waiter looks the key up again when it runs, so a stale answer only stays
    // out of the cache: the waiter then places the key afresh.
    if (res.node >= 0 && !overtaken(b.key(item), b.sent_at)) dir_.set(b.key(item), static_cast<NodeIndex>(res.node));
    item.fn(res);
  }

  b.keys.clear();
  b.items.clear();
  b.sent_at = 0;
  if (spare_batches_.size() < kMaxSpareBatches) spare_batches_.push_back(std::move(b));
  if (cmd_->up()) send_batches();
}

// Entries removed here are erased from the cache at once, while the main server
// still has to answer the commands sent before the removal: a placement or a load
// of the same key among them answers with the entry as it was, which must not come
// back into the cache. So a removal is remembered until its own reply, which comes
// after every earlier one.
bool MainStore::overtaken(std::string_view dir_key, uint64_t sent_at) const {
  if (sent_at < flushed_at_) return true;
  if (removed_at_.empty()) return false;
  auto it = removed_at_.find(std::string(dir_key));
  return it != removed_at_.end() && sent_at < it->second;
}

void MainStore::remove(std::string_view dir_key, NodeIndex node) {
  dir_.erase_if(dir_key, node);
  const uint64_t at = ++sent_;
  // Encoded into a reused buffer: a DEL through the proxy allocates nothing here.
  remove_call_.clear();
  resp::add_array_header(remove_call_, 8);
  resp::add_bulk(remove_call_, "EVAL");
  resp::add_bulk(remove_call_, kRemoveScript);
  resp::add_bulk(remove_call_, "1");
  resp::add_bulk(remove_call_, bucket_name(dir_key));
  resp::add_bulk(remove_call_, dir_key);
  resp::add_bulk(remove_call_, nodes_[node].name());
  resp::add_bulk(remove_call_, kEventsChannel);
  resp::add_bulk(remove_call_, origin_);
  if (batches_in_flight_ == 0 && load_in_flight_ == 0) {
    cmd_->command_encoded(remove_call_.view(), [](redisReply*) {});  // nothing earlier is unanswered
    return;
  }
  if (!cmd_->command_encoded(remove_call_.view(), [this, at](redisReply*) { forget_removal(at); })) return;
  removed_at_[std::string(dir_key)] = at;
  removals_.push_back({std::string(dir_key), at});
}

// The removal sent as command `at` is answered: every command sent before it is too.
void MainStore::forget_removal(uint64_t at) {
  while (!removals_.empty() && removals_.front().second <= at) {
    auto it = removed_at_.find(removals_.front().first);
    if (it != removed_at_.end() && it->second == removals_.front().second) removed_at_.erase(it);
    removals_.pop_front();
  }
}

void MainStore::flush(std::function<void(std::string_view)> fn) {
  dir_.clear();
  flushed_at_ = ++sent_;
  std::string buckets = std::to_string(kBuckets);
  bool sent = cmd_->command({"EVAL", kFlushScript, "0", buckets, kEventsChannel, origin_}, [fn](redisReply* r) {
    if (r == nullptr) fn("ERR main server unavailable: directory not flushed");
    else if (r->type == REDIS_REPLY_ERROR) fn(std::string_view(r->str, r->len));
    else fn("");
  });
  if (!sent) fn("ERR main server unavailable: directory not flushed");
}

}  // namespace headroom::balancer
