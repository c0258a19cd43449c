#include "balancer/memory_poller.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "net/handle.h"

namespace headroom::balancer {

namespace {
uint64_t field_u64(std::string_view info, std::string_view key) {
  size_t pos = 0;
  while ((pos = info.find(key, pos)) != std::string_view::npos) {
    if (pos == 0 || info[pos - 1] == '\n') {
      uint64_t v = 0;
      const char* b = info.data() + pos + key.size();
      std::from_chars(b, info.data() + info.size(), v);
      return v;
    }
    pos += key.size();
  }
  return 0;
}

// A field's text value ("allkeys-lru"), empty when absent.
std::string_view field_text(std::string_view info, std::string_view key) {
  size_t pos = 0;
  while ((pos = info.find(key, pos)) != std::string_view::npos) {
    if (pos == 0 || info[pos - 1] == '\n') {
      std::string_view v = info.substr(pos + key.size());
      return v.substr(0, v.find_first_of("\r\n"));
    }
    pos += key.size();
  }
  return {};
}
}  // namespace

NodeState::Persistence parse_persistence(std::string_view info) {
  NodeState::Persistence p;
  p.loading = field_text(info, "loading:") == "1";
  p.aof_enabled = field_text(info, "aof_enabled:") == "1";
  p.aof_rewrite_in_progress = field_text(info, "aof_rewrite_in_progress:") == "1";
  p.aof_rewrite_scheduled = field_text(info, "aof_rewrite_scheduled:") == "1";
  p.rdb_bgsave_in_progress = field_text(info, "rdb_bgsave_in_progress:") == "1";
  const std::string_view changes = field_text(info, "rdb_changes_since_last_save:");
  std::from_chars(changes.data(), changes.data() + changes.size(), p.rdb_changes_since_last_save);
  return p;
}

NodeFigures parse_info(std::string_view info) {
  NodeFigures f;
  f.used_memory = field_u64(info, "used_memory:");
  f.maxmemory = field_u64(info, "maxmemory:");
  f.keys = field_u64(info, "db0:keys=");
  // allkeys-* always makes room; volatile-* only while some key has a TTL.
  std::string_view policy = field_text(info, "maxmemory_policy:");
  std::string_view db0 = field_text(info, "db0:");
  uint64_t expires = 0;
  if (size_t e = db0.find("expires="); e != std::string_view::npos)
    std::from_chars(db0.data() + e + 8, db0.data() + db0.size(), expires);
  f.evicts = f.maxmemory != 0 && (policy.starts_with("allkeys-") || (policy.starts_with("volatile-") && expires != 0));
  f.jemalloc = info.find("mem_allocator:jemalloc") != std::string_view::npos;
  return f;
}

MemoryPoller::MemoryPoller(uv_loop_t* loop, NodeRegistry& nodes, Ledger& ledger, uint32_t interval_ms,
                           const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts)
    : loop_(loop), nodes_(nodes), ledger_(ledger), interval_ms_(interval_ms), tls_(tls), timeouts_(timeouts) {
  timer_ = net::new_handle(loop_, this, uv_timer_init);
}

MemoryPoller::~MemoryPoller() {
  stop();
  net::close_and_delete(timer_);
}

void MemoryPoller::start() {
  for (auto& n : nodes_.all()) node_added(n.index);
  uv_timer_start(timer_, &MemoryPoller::on_tick, interval_ms_, interval_ms_);
}

void MemoryPoller::node_added(NodeIndex i) {
  const auto& n = nodes_[i];
  in_flight_.resize(size_t{i} + 1, false);
  sent_ms_.resize(size_t{i} + 1, 0);
  auto conn = std::make_unique<ControlConn>(loop_, "poller " + n.name(), n.config.address, n.config.password, tls_,
                                            timeouts_);
  conn->set_client_name("hr-poller");
  conn->start([this, i](bool up) {
    nodes_[i].reachable = up;
    in_flight_[i] = false;
    if (up) nodes_[i].redis_version.clear();  // asked again: a restart may bring another
    if (up) poll(i);  // fresh figures before the node takes new keys
  });
  conns_.resize(size_t{i} + 1);
  conns_[i] = std::move(conn);
}

void MemoryPoller::stop() {
  uv_timer_stop(timer_);
  for (auto& c : conns_) c->stop();
}

void MemoryPoller::on_tick(uv_timer_t* t) {
  auto* self = static_cast<MemoryPoller*>(t->data);
  uint64_t now = uv_now(self->loop_);
  uint64_t stale_ms = std::max<uint64_t>(3ull * self->interval_ms_, 300);
  for (NodeIndex i = 0; i < self->nodes_.size(); ++i) {
    if (self->in_flight_[i] && now - self->sent_ms_[i] > stale_ms && self->nodes_[i].reachable) {
      spdlog::warn("node {}: no answer to INFO for {} ms: no new keys go there until it answers",
                   self->nodes_[i].name(), now - self->sent_ms_[i]);
      self->nodes_[i].reachable = false;
    }
    self->poll(i);
  }
}

void MemoryPoller::poll(NodeIndex i) {
  if (in_flight_[i] || !conns_[i]->up()) return;
  // The server section once per connection (a restart may bring another version).
  const bool version = nodes_[i].redis_version.empty();
  std::vector<std::string_view> argv = {"INFO", "memory", "keyspace", "persistence"};
  if (version) argv.push_back("server");
  const uint64_t changes = nodes_[i].persistence_changes;
  bool sent = conns_[i]->command(argv, [this, i, version, changes](redisReply* r) {
    in_flight_[i] = false;
    if (r == nullptr || r->type != REDIS_REPLY_STRING) return;
    NodeState& n = nodes_[i];
    const std::string_view info(r->str, r->len);
    if (version) n.redis_version = std::string(field_text(info, "redis_version:"));
    n.persistence = parse_persistence(info);
    n.persistence_seen = std::max(n.persistence_seen, changes);
    if (!n.reachable) spdlog::info("node {}: answering again", n.name());
    n.reachable = true;
    ledger_.poll_answered(i, parse_info(std::string_view(r->str, r->len)), uv_now(loop_));
  });
  in_flight_[i] = sent;
  if (sent) {
    sent_ms_[i] = uv_now(loop_);
    ledger_.poll_sent(i);
  }
}

}  // namespace headroom::balancer
