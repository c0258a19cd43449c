#include "balancer/main_store.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>

namespace headroom::balancer {

namespace {

// Places a batch of keys, each unless it has an entry already, and returns the node
// that holds each one. One PUBLISH tells the other proxies of every key it placed:
// 'B' origin, then per key "<key length>:<node>\n<key>" (keys are binary-safe;
// node names hold no '\n').
// KEYS: the keys' buckets; ARGV: channel, origin, then key, node for each KEYS[i].
constexpr std::string_view kPlaceScript = R"(
local out, placed = {}, {}
for i = 1, #KEYS do
  local key, node = ARGV[2 * i + 1], ARGV[2 * i + 2]
  if redis.call('HSETNX', KEYS[i], key, node) == 1 then
    out[i] = node
    placed[#placed + 1] = #key .. ':' .. node .. '\n' .. key
  else
    out[i] = redis.call('HGET', KEYS[i], key)
  end
end
if #placed > 0 then redis.call('PUBLISH', ARGV[1], 'B' .. ARGV[2] .. table.concat(placed)) end
return out
)";

// Placements per script call, and script calls in flight: a burst of new keys is
// placed in a few calls rather than one per key (the main server's per-call cost
// bounded new-key writes at ~134k/s), while a lone key still goes at once.
constexpr size_t kMaxBatch = 256;
constexpr uint32_t kMaxBatchesInFlight = 2;

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
                     const std::unique_ptr<proxy::TlsContext>& tls)
    : loop_(loop), config_(main), nodes_(nodes), dir_(dir), origin_(random_origin()) {
  cmd_ = std::make_unique<ControlConn>(loop_, "main " + main.name, main.address, main.password, tls);
  sub_ = std::make_unique<ControlConn>(loop_, "main " + main.name + " (events)", main.address, main.password, tls);
  retry_timer_ = new uv_timer_t;
  uv_timer_init(loop_, retry_timer_);
  retry_timer_->data = this;
}

MainStore::~MainStore() {
  stop();
  uv_close(reinterpret_cast<uv_handle_t*>(retry_timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

std::string MainStore::bucket_name(std::string_view dir_key) {
  return "hr:dir:" + std::to_string(stable_hash(dir_key) % kBuckets);
}

void MainStore::start(std::function<void()> on_loaded) {
  on_loaded_ = std::move(on_loaded);
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
// still queued, or waiting, fails here.
void MainStore::fail_placements() {
  queued_.clear();
  batches_in_flight_ = 0;
  auto all = std::move(pending_);
  pending_.clear();
  for (auto& [key, waiters] : all)
    for (auto& fn : waiters) fn(PlaceResult{-1, "ERR main server unavailable: cannot place new keys"});
}

void MainStore::start_load() {
  if (!cmd_->up() || !subscribed_) return;  // the other one's arrival starts it
  ++load_generation_;
  load_next_bucket_ = 0;
  load_in_flight_ = 0;
  dir_.begin_epoch();
  load_next();
}

void MainStore::load_next() {
  uint64_t gen = load_generation_;
  while (load_in_flight_ < kLoadWindow && load_next_bucket_ < kBuckets) {
    std::string bucket = "hr:dir:" + std::to_string(load_next_bucket_++);
    bool sent = cmd_->command({"HGETALL", bucket}, [this, gen](redisReply* r) {
      if (gen != load_generation_) return;  // a newer load took over
      --load_in_flight_;
      if (r == nullptr) return;  // connection lost; a new load starts on reconnect
      if (r->type == REDIS_REPLY_ERROR) {
        // A bucket that does not load makes the whole load worthless: its end would
        // drop every entry of that bucket. Give up on it and start over in a while.
        spdlog::warn("directory load failed: HGETALL answered {}; retrying in {} ms", std::string_view(r->str, r->len),
                     kLoadRetryMs);
        ++load_generation_;
        load_in_flight_ = 0;
        uv_timer_start(retry_timer_, [](uv_timer_t* t) { static_cast<MainStore*>(t->data)->start_load(); },
                       kLoadRetryMs, 0);
        return;
      }
      if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
          std::string_view key(r->element[i]->str, r->element[i]->len);
          std::string_view node(r->element[i + 1]->str, r->element[i + 1]->len);
          if (auto idx = nodes_.find(node)) dir_.set(key, *idx);
          else spdlog::warn("directory names unknown node '{}' for a key; entry ignored", node);
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
  auto [it, first] = pending_.try_emplace(std::string(dir_key));
  it->second.push_back(std::move(fn));
  if (!first) return true;  // already being placed: this waiter shares that answer
  queued_.push_back({it->first, node});
  if (batches_in_flight_ < kMaxBatchesInFlight) send_batch();
  return true;
}

void MainStore::send_batch() {
  size_t n = std::min(queued_.size(), kMaxBatch);
  if (n == 0) return;
  std::vector<std::string> keys, buckets;
  keys.reserve(n);
  buckets.reserve(n);
  std::vector<std::string_view> argv;
  argv.reserve(5 + 3 * n);
  std::string numkeys = std::to_string(n);
  argv.insert(argv.end(), {"EVAL", kPlaceScript, numkeys});
  for (size_t i = 0; i < n; ++i) buckets.push_back(bucket_name(queued_[i].key));
  argv.insert(argv.end(), buckets.begin(), buckets.end());
  argv.insert(argv.end(), {kEventsChannel, origin_});
  for (size_t i = 0; i < n; ++i) {
    keys.push_back(std::move(queued_[i].key));
    argv.push_back(keys.back());
    argv.push_back(nodes_[queued_[i].node].name());
  }
  queued_.erase(queued_.begin(), queued_.begin() + static_cast<ptrdiff_t>(n));
  bool sent = cmd_->command(argv, [this, keys = std::move(keys)](redisReply* r) {
    --batches_in_flight_;
    for (size_t i = 0; i < keys.size(); ++i) {
      PlaceResult res;
      if (r == nullptr) {
        res.error = "ERR main server unavailable: cannot place new keys";
      } else if (r->type == REDIS_REPLY_ARRAY && r->elements == keys.size() &&
                 r->element[i]->type == REDIS_REPLY_STRING) {
        std::string_view name(r->element[i]->str, r->element[i]->len);
        if (auto idx = nodes_.find(name)) {
          res.node = *idx;
          dir_.set(keys[i], *idx);
        } else {
          res.error = "ERR directory places this key on unknown node '" + std::string(name) + "'";
        }
      } else {
        res.error = "ERR main server refused placement: " +
                    std::string(r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len) : "unexpected reply");
      }
      resolve(keys[i], res);
    }
    if (!queued_.empty() && cmd_->up()) send_batch();
  });
  if (sent) {
    ++batches_in_flight_;
    return;
  }
  // Not connected: cmd_'s state callback fails whatever else waits.
  for (auto& k : keys) resolve(k, PlaceResult{-1, "ERR main server unavailable: cannot place new keys"});
}

// Gives `key`'s waiters their answer. They may place more keys meanwhile.
void MainStore::resolve(const std::string& key, const PlaceResult& res) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  auto waiters = std::move(it->second);
  pending_.erase(it);
  for (auto& w : waiters) w(res);
}

void MainStore::remove(std::string_view dir_key, NodeIndex node) {
  dir_.erase_if(dir_key, node);
  cmd_->command({"EVAL", kRemoveScript, "1", bucket_name(dir_key), dir_key, nodes_[node].name(), kEventsChannel,
                 origin_},
                [](redisReply*) {});
}

void MainStore::flush(std::function<void(std::string_view)> fn) {
  dir_.clear();
  std::string buckets = std::to_string(kBuckets);
  bool sent = cmd_->command({"EVAL", kFlushScript, "0", buckets, kEventsChannel, origin_}, [fn](redisReply* r) {
    if (r == nullptr) fn("ERR main server unavailable: directory not flushed");
    else if (r->type == REDIS_REPLY_ERROR) fn(std::string_view(r->str, r->len));
    else fn("");
  });
  if (!sent) fn("ERR main server unavailable: directory not flushed");
}

}  // namespace headroom::balancer
