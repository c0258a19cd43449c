#include "balancer/main_store.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>

namespace headroom::balancer {

namespace {

// KEYS[1] bucket; ARGV: dir_key, node, channel, origin.
constexpr std::string_view kPlaceScript = R"(
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], 'P' .. ARGV[4] .. ARGV[2] .. '\n' .. ARGV[1])
return ARGV[2]
)";

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

}  // namespace

MainStore::MainStore(uv_loop_t* loop, const conf::BackendConfig& main, NodeRegistry& nodes, Directory& dir,
                     const proxy::TlsContext* tls)
    : loop_(loop), config_(main), nodes_(nodes), dir_(dir), origin_(random_origin()) {
  cmd_ = std::make_unique<ControlConn>(loop_, "main " + main.name, main.address, main.password, tls);
  sub_ = std::make_unique<ControlConn>(loop_, "main " + main.name + " (events)", main.address, main.password, tls);
}

MainStore::~MainStore() { stop(); }

std::string MainStore::bucket_name(std::string_view dir_key) {
  return "hr:dir:" + std::to_string(stable_hash(dir_key) % kBuckets);
}

void MainStore::start(std::function<void()> on_loaded) {
  on_loaded_ = std::move(on_loaded);
  // Subscribe first, load second: a change made during the load is not missed.
  sub_->start([this](bool up) {
    subscribed_ = false;
    if (!up) return;
    sub_->subscribe(kEventsChannel, [this](redisReply* r) { on_event(r); });
  });
  cmd_->start([this](bool up) {
    if (up) on_main_up();
    else {
      for (auto& [key, waiters] : pending_)
        for (auto& fn : waiters) fn(PlaceResult{-1, "ERR main server unavailable: cannot place new keys"});
      pending_.clear();
    }
  });
}

void MainStore::stop() {
  cmd_->stop();
  sub_->stop();
}

void MainStore::on_main_up() {
  // (Re)load everything: after an outage, changes may have been missed.
  ++load_generation_;
  load_next_bucket_ = 0;
  load_in_flight_ = 0;
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
        spdlog::info("directory loaded: {} entries", dir_.size());
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
  size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return;
  std::string_view node = rest.substr(0, nl);
  std::string_view key = rest.substr(nl + 1);
  auto idx = nodes_.find(node);
  if (!idx) return;
  if (msg[0] == 'P') dir_.set(key, *idx);
  else if (msg[0] == 'D') dir_.erase_if(key, *idx);
}

bool MainStore::place(std::string_view dir_key, NodeIndex node, PlaceFn fn) {
  auto it = pending_.find(std::string(dir_key));
  if (it != pending_.end()) {
    it->second.push_back(std::move(fn));
    return true;
  }
  std::string key(dir_key);
  std::string bucket = bucket_name(dir_key);
  bool sent = cmd_->command({"EVAL", kPlaceScript, "1", bucket, key, nodes_[node].name(), kEventsChannel, origin_},
                            [this, key](redisReply* r) {
                              auto pit = pending_.find(key);
                              if (pit == pending_.end()) return;
                              auto waiters = std::move(pit->second);
                              pending_.erase(pit);
                              PlaceResult res;
                              if (r == nullptr) {
                                res.error = "ERR main server unavailable: cannot place new keys";
                              } else if (r->type == REDIS_REPLY_STRING) {
                                std::string_view name(r->str, r->len);
                                if (auto idx = nodes_.find(name)) {
                                  res.node = *idx;
                                  dir_.set(key, *idx);
                                } else {
                                  res.error = "ERR directory places this key on unknown node '" + std::string(name) + "'";
                                }
                              } else {
                                res.error = "ERR main server refused placement: " +
                                            std::string(r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len)
                                                                                     : "unexpected reply");
                              }
                              for (auto& w : waiters) w(res);
                            });
  if (!sent) return false;
  pending_[key].push_back(std::move(fn));
  return true;
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
