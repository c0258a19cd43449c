#include "balancer/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "balancer/directory_scripts.h"
#include "balancer/mover.h"
#include "balancer/rebalancer.h"
#include "balancer/sweep.h"
#include "net/handle.h"
#include "resp/reply_writer.h"

namespace headroom::balancer {

using scripts::Script;

namespace {
constexpr uint32_t kLeaseMs = 3000;        // the lease's life; renewed every kRenewMs
constexpr uint32_t kRenewMs = 1000;
constexpr uint64_t kTickMs = 50;           // barrier, settling, retires, sweep
constexpr size_t kMaxBatch = 256;          // keys per script call
constexpr size_t kMaxSettle = 512;         // entries settled per round
static_assert(kMaxSettle <= 0xffff, "a settle reply's tag holds the item in 16 bits");
constexpr size_t kMaxSpareNodes = 4096;    // settling and waiting nodes kept for reuse
constexpr std::string_view kFenceTtl = "86400";
// The keyevent notifications that mean a key has gone from its node.
constexpr std::string_view kGoneEvents[] = {"__keyevent@0__:del", "__keyevent@0__:expired",
                                            "__keyevent@0__:evicted", "__keyevent@0__:rename_from",
                                            "__keyevent@0__:move_from"};
// notify-keyspace-events must hold these: keyevent notifications of the generic,
// expired and evicted classes.
constexpr std::string_view kNeededEvents = "Egxe";

uint64_t to_u64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}
}  // namespace

Coordinator::Coordinator(uv_loop_t* loop, const conf::Config& config, NodeRegistry& nodes, MainStore& store,
                         const Ledger& ledger, const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts)
    : loop_(loop), config_(config), nodes_(nodes), store_(store), tls_(tls), timeouts_(timeouts) {
  main_ = std::make_unique<ControlConn>(loop_, "coordinator main " + config_.main.name, config_.main.address,
                                        config_.main.password, tls_, timeouts_);
  main_->set_client_name("hr-coordinator");
  links_.resize(nodes_.size());
  sweep_ = std::make_unique<Sweep>(*this);
  mover_ = std::make_unique<Mover>(*this);
  rebalancer_ = std::make_unique<Rebalancer>(*this, *mover_, ledger, config_);
  lease_timer_ = net::new_handle(loop_, this, uv_timer_init);
  tick_timer_ = net::new_handle(loop_, this, uv_timer_init);
  barrier_timer_ = net::new_handle(loop_, this, uv_timer_init);
  kick_timer_ = net::new_handle(loop_, this, uv_timer_init);
}

Coordinator::~Coordinator() {
  stop();
  net::close_and_delete(lease_timer_);
  net::close_and_delete(tick_timer_);
  net::close_and_delete(barrier_timer_);
  net::close_and_delete(kick_timer_);
}

void Coordinator::start() {
  store_.set_change_listener(
      [this](char kind, uint64_t seq, std::string_view key, NodeIndex node) { on_change(kind, seq, key, node); });
  main_->start([this](bool up) {
    if (up) scripts::load_all(*main_);
  });
  uv_timer_start(lease_timer_, &Coordinator::on_lease_timer, 100, kRenewMs);
}

void Coordinator::stop() {
  uv_timer_stop(lease_timer_);
  if (active() && main_->up()) {
    main_->post({"EVALSHA", scripts::sha(Script::Lease), "0", store_.origin(), "0", "give"});
  }
  became_inactive("");
  main_->stop();
}

ControlConn* Coordinator::node_conn(NodeIndex node) {
  auto& l = links_[node];
  return l.cmd && l.cmd->up() ? l.cmd.get() : nullptr;
}

uint64_t Coordinator::sweep_keys_per_tick() const {
  return std::max<uint64_t>(1, uint64_t{config_.sweep_keys_per_s} * kTickMs / 1000);
}

// --- the lease ---------------------------------------------------------------------

void Coordinator::on_lease_timer(uv_timer_t* t) { static_cast<Coordinator*>(t->data)->try_lease(); }

void Coordinator::try_lease() {
  const uint64_t now = uv_now(loop_);
  if (active() && now - lease_renewed_ms_ >= kLeaseMs - kRenewMs / 2) {
    // Not renewed in time (the main server is slow or unreachable): it may have
    // expired, and another proxy may hold it now.
    became_inactive("the coordinator lease could not be renewed in time");
  }
  if (lease_in_flight_ || !main_->up() || !store_.loaded()) return;
  const std::string origin = store_.origin();
  const uint64_t asked = now;
  lease_in_flight_ =
      main_->command({"EVALSHA", scripts::sha(Script::Lease), "0", origin, std::to_string(kLeaseMs), "take"},
                     [this, origin, asked](redisReply* r) {
                       lease_in_flight_ = false;
                       if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return;
                       const auto token = static_cast<uint64_t>(r->integer);
                       if (token == 0 || origin != store_.origin()) {
                         if (active()) became_inactive("another proxy holds the coordinator lease");
                         return;
                       }
                       lease_renewed_ms_ = asked;  // the lease runs from when it was asked for, at the latest
                       if (token != token_) became_active(token);
                     });
}

void Coordinator::became_active(uint64_t token) {
  if (active()) became_inactive("");
  token_ = token;
  lease_value_ = store_.origin() + " " + std::to_string(token);
  proxies_.clear();  // each registered proxy gets a full lapse from now
  barrier_ = 0;
  settle_in_flight_ = false;  // a round of an earlier term ends ignored
  spdlog::info("coordinator: this proxy ({}) holds the lease (token {})", store_.origin(), token);
  connect_nodes();
  sweep_->begin();
  mover_->begin(token);
  rebalancer_->begin();
  uv_timer_start(tick_timer_, &Coordinator::on_tick, kTickMs, kTickMs);
}

void Coordinator::became_inactive(const std::string& why) {
  if (!active()) return;
  if (!why.empty()) spdlog::warn("coordinator: {}: no longer the coordinator", why);
  token_ = 0;
  lease_value_.clear();
  settle_in_flight_ = false;
  uv_timer_stop(tick_timer_);
  uv_timer_stop(barrier_timer_);
  uv_timer_stop(kick_timer_);
  for (auto& l : links_) {
    if (l.cmd) l.cmd->stop();
    if (l.sub) l.sub->stop();
    l.cmd.reset();
    l.sub.reset();
  }
  retires_.clear();
  settling_.clear();  // what is left is found again by the next coordinator's sweep
  tags_waiting_.clear();
  waiting_keys_.clear();
  fencing_.clear();
  sweep_->end();
  mover_->end();
  rebalancer_->end();
}

void Coordinator::found_moving(std::string_view dir_key, std::string_view value) {
  if (active()) mover_->found_moving(dir_key, value);
}

bool Coordinator::lease_lost(redisReply* r) {
  if (r != nullptr && r->type == REDIS_REPLY_ERROR && reply_text(r).starts_with("NOTCOORD")) {
    became_inactive("the main server says the lease is another proxy's");
    return true;
  }
  return false;
}

// --- the nodes -----------------------------------------------------------------------

void Coordinator::node_added(NodeIndex node) {
  links_.resize(size_t{node} + 1);
  sweep_->node_added();
  mover_->node_added();
  rebalancer_->node_added();
  if (active()) connect_node(node);
}

void Coordinator::connect_nodes() {
  for (NodeIndex i = 0; i < nodes_.size(); ++i) connect_node(i);
}

void Coordinator::connect_node(NodeIndex i) {
  {
    const auto& cfg = nodes_[i].config;
    auto& l = links_[i];
    l.cmd = std::make_unique<ControlConn>(loop_, "coordinator " + cfg.name, cfg.address, cfg.password, tls_, timeouts_);
    l.sub = std::make_unique<ControlConn>(loop_, "coordinator " + cfg.name + " (notifications)", cfg.address,
                                          cfg.password, tls_, timeouts_);
    l.cmd->set_client_name("hr-coordinator");
    l.sub->set_client_name("hr-coordinator-events");
    l.cmd->start([this, i](bool up) {
      if (!up) return;
      on_node_cmd_up(i);
      mover_->node_up(i);
    });
    ControlConn* sub = l.sub.get();
    l.sub->start([this, i, sub, was_down = std::make_shared<bool>(false)](bool up) {
      if (!up) {
        *was_down = true;  // notifications sent meanwhile are lost
        return;
      }
      std::vector<std::string_view> channels(std::begin(kGoneEvents), std::end(kGoneEvents));
      sub->subscribe(channels, [this, i](redisReply* r) { on_notification(i, r); });
      if (*was_down) sweep_->catch_up();
    });
  }
}

// Keyevent notifications are how entries follow deletions: turned on on each node,
// keeping whatever classes were already on.
void Coordinator::on_node_cmd_up(NodeIndex i) {
  ControlConn* c = links_[i].cmd.get();
  // Sent as the connection comes up; if it drops first, the next up sends it again.
  (void)c->command({"CONFIG", "GET", "notify-keyspace-events"}, [this, i, c](redisReply* r) {
    if (r == nullptr || links_[i].cmd.get() != c) return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
      spdlog::warn("coordinator: node {}: cannot read notify-keyspace-events ({}): deletions are found by the "
                   "sweep only", nodes_[i].name(), r->type == REDIS_REPLY_ERROR ? reply_text(r) : "unexpected reply");
      return;
    }
    std::string value(reply_text(r->element[1]));
    const bool all = value.find('A') != std::string::npos;
    std::string wanted = value;
    for (char f : kNeededEvents)
      if (value.find(f) == std::string::npos && !(all && f != 'E')) wanted += f;
    if (wanted == value) return;
    (void)c->command({"CONFIG", "SET", "notify-keyspace-events", wanted}, [this, i](redisReply* r2) {
      if (r2 != nullptr && r2->type == REDIS_REPLY_ERROR)
        spdlog::warn("coordinator: node {}: cannot turn on keyevent notifications ({}): deletions are found by "
                     "the sweep only", nodes_[i].name(), reply_text(r2));
    });
  });
}

void Coordinator::on_notification(NodeIndex i, redisReply* r) {
  if (!active() || r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  if (reply_text(r->element[0]) != "message" || r->element[2]->type != REDIS_REPLY_STRING) return;
  ++counters_.notifications;
  std::string_view dk = directory_key(reply_text(r->element[2]));
  if (is_tag(dk)) return;  // a tag's entry serves the tag's other keys: the sweep decides
  retires_.emplace_back(std::string(dk), i);
}

void Coordinator::retire(std::string_view dir_key, NodeIndex node) {
  if (active()) retires_.emplace_back(std::string(dir_key), node);
}

void Coordinator::send_retires() {
  while (!retires_.empty() && main_->up()) {
    const size_t n = std::min(retires_.size(), kMaxBatch);
    resp::Buffer call;
    scripts::encode_head(call, Script::Retire, n, n + 2 + 2 * n);
    for (size_t k = 0; k < n; ++k) resp::add_bulk(call, MainStore::bucket_name(retires_[k].first));
    resp::add_bulk(call, kEventsChannel);
    resp::add_bulk(call, store_.origin());
    for (size_t k = 0; k < n; ++k) {
      resp::add_bulk(call, retires_[k].first);
      resp::add_bulk(call, nodes_[retires_[k].second].name());
    }
    counters_.retired += n;
    main_->post_encoded(call.view());
    retires_.erase(retires_.begin(), retires_.begin() + static_cast<long>(n));
  }
}

void Coordinator::adopt(std::string_view dir_key, NodeIndex node) {
  // A placement as a proxy's, on the node that holds the key: it does nothing if an
  // entry appeared meanwhile.
  if (!main_->up()) return;
  resp::Buffer call;
  const std::string bucket = MainStore::bucket_name(dir_key);
  std::string message = std::to_string(dir_key.size()) + ":" + nodes_[node].name() + "\n" + std::string(dir_key);
  std::string_view keys[] = {bucket};
  std::string_view args[] = {kEventsChannel, store_.origin(), message, scripts::kLayoutKey, scripts::kLayout,
                             dir_key, nodes_[node].name()};
  scripts::encode(call, Script::Place, keys, args);
  ++counters_.orphans;
  main_->post_encoded(call.view());
}

// --- retirements, the barrier, removal ------------------------------------------------

void Coordinator::on_change(char kind, uint64_t seq, std::string_view key, NodeIndex node) {
  if (kind == 'X') {  // the directory went back (the main server flushed or restored): nothing queued holds
    became_inactive("the directory on the main server went back");
    return;
  }
  if (!active()) return;
  if (kind == 'R') {
    settle_later(std::string(key), node, nodes_[node].name() + " " + std::to_string(seq) + " R", seq);
  } else if (kind == 'F') {
    sweep_->flushed(seq);  // every older entry is retiring: the sweep finds them
  }
}

void Coordinator::settle_later(std::string dir_key, NodeIndex node, std::string value, uint64_t seq) {
  if (!active() || !remember_waiting(dir_key)) return;  // waiting already (the sweep found it again)
  if (spare_settling_.empty()) {
    settling_.emplace(seq, Waiting{std::move(dir_key), node, std::move(value), seq});
    return;
  }
  auto n = std::move(spare_settling_.back());
  spare_settling_.pop_back();
  n.key() = seq;
  n.mapped() = Waiting{std::move(dir_key), node, std::move(value), seq};
  settling_.insert(std::move(n));
}

void Coordinator::node_scanned() {
  for (auto& w : tags_waiting_) settling_.emplace(w.seq, std::move(w));
  tags_waiting_.clear();
}

void Coordinator::on_tick(uv_timer_t* t) {
  auto* self = static_cast<Coordinator*>(t->data);
  if (!self->active()) return;
  self->send_retires();
  // The barrier matters while entries wait for it; otherwise the proxies are polled
  // at a quarter of the rate, enough to find one that lapsed.
  if (!self->settling_.empty() || self->mover_->waiting_for_barrier() || ++self->idle_ticks_ % 4 == 0)
    self->poll_proxies();
  self->settle_round();
  self->sweep_->tick();
  self->mover_->tick();
  self->rebalancer_->tick();
}

void Coordinator::watch_barrier() {
  if (!active() || uv_is_active(reinterpret_cast<uv_handle_t*>(barrier_timer_))) return;
  constexpr uint64_t kBarrierPollMs = 2;
  uv_timer_start(
      barrier_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Coordinator*>(t->data);
        if (!self->active() || !self->mover_->waiting_for_barrier()) {
          uv_timer_stop(t);
          return;
        }
        self->poll_proxies();
      },
      kBarrierPollMs, kBarrierPollMs);
}

void Coordinator::mover_idle() {
  if (!active()) return;
  uv_timer_start(
      kick_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Coordinator*>(t->data);
        if (!self->active()) return;
        self->mover_->tick();
        self->rebalancer_->tick();
      },
      0, 0);
}

void Coordinator::poll_proxies() {
  if (proxies_in_flight_ || !main_->up()) return;
  proxies_in_flight_ = main_->command({"EVALSHA", scripts::sha(Script::Proxies), "0"}, [this](redisReply* r) {
    proxies_in_flight_ = false;
    if (r != nullptr && active()) on_proxies(r);
    if (active() && mover_->waiting_for_barrier()) mover_->tick();
  });
}

void Coordinator::on_proxies(redisReply* r) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY) return;
  const redisReply* list = r->element[1];
  const uint64_t now = uv_now(loop_);
  std::unordered_set<std::string> present;
  uint64_t barrier = UINT64_MAX;
  for (size_t i = 0; i + 1 < list->elements; i += 2) {
    std::string id(reply_text(list->element[i]));
    std::string_view value = reply_text(list->element[i + 1]);
    present.insert(id);
    auto [it, fresh] = proxies_.try_emplace(id, ProxySeen{std::string(value), now, 0});
    ProxySeen& seen = it->second;
    if (fresh || seen.value != value) {
      seen.value = value;
      seen.changed_ms = now;
      seen.acked = to_u64(value.substr(0, value.find(' ')));
    }
    barrier = std::min(barrier, seen.acked);
    // Heartbeats come every 200 ms: a registration that has not changed for the
    // lapse is a proxy that is dead, paused or cut off. It is fenced before anything
    // goes on without it.
    if (now - seen.changed_ms > config_.proxy_lapse_ms && !fencing_.count(id)) fence(id);
  }
  std::erase_if(proxies_, [&](const auto& kv) { return !present.count(kv.first); });
  barrier_ = barrier == UINT64_MAX ? 0 : barrier;
}

// docs/directory.md, "Fencing": the marker first, then the proxy's connections are
// killed, on every node; only then is its registration dropped.
void Coordinator::fence(const std::string& id) {
  for (NodeIndex i = 0; i < nodes_.size(); ++i)
    if (node_conn(i) == nullptr) return;  // every node, or none yet: tried again at the next poll
  fencing_.insert(id);
  spdlog::warn("coordinator: proxy {} has not acknowledged the change stream for {} ms: fencing it", id,
               config_.proxy_lapse_ms);
  auto remaining = std::make_shared<size_t>(nodes_.size());
  auto failed = std::make_shared<bool>(false);
  const uint64_t token = token_;
  auto node_done = [this, id, remaining, failed, token](bool ok) {
    if (!ok) *failed = true;
    if (--*remaining != 0 || token != token_) return;
    if (*failed) {
      fencing_.erase(id);  // tried again at the next poll
      return;
    }
    const bool sent =
        main_->command({"EVALSHA", scripts::sha(Script::DropProxy), "0", lease_value_, id}, [this, id](redisReply* r) {
          if (lease_lost(r)) return;
          fencing_.erase(id);
          proxies_.erase(id);
          ++counters_.fenced;
          spdlog::warn("coordinator: proxy {} fenced and dropped", id);
        });
    if (!sent) fencing_.erase(id);  // the main server is down: fenced again at a later poll
  };
  const std::string marker = "hr:fence:" + id;
  const std::string needle = " name=hr-" + id + " ";
  for (NodeIndex i = 0; i < nodes_.size(); ++i) {
    ControlConn* c = node_conn(i);
    c->post({"SELECT", "1"});
    c->post({"SET", marker, "1", "EX", kFenceTtl});
    c->post({"SELECT", "0"});
    const bool listed = c->command({"CLIENT", "LIST", "TYPE", "normal"}, [c, needle, node_done](redisReply* r) {
      if (r == nullptr || r->type != REDIS_REPLY_STRING) {
        node_done(false);
        return;
      }
      std::string_view list = reply_text(r);
      std::vector<std::string> ids;
      for (size_t at = list.find(needle); at != std::string_view::npos; at = list.find(needle, at + 1)) {
        size_t line = list.rfind('\n', at);
        line = line == std::string_view::npos ? 0 : line + 1;
        if (list.substr(line, 3) != "id=") continue;
        ids.emplace_back(list.substr(line + 3, list.find(' ', line) - line - 3));
      }
      if (ids.empty()) {
        node_done(true);
        return;
      }
      auto left = std::make_shared<size_t>(ids.size());
      // A failure is reported once (a dropped connection fails every kill still out).
      auto failed_once = [left, node_done] {
        if (*left == SIZE_MAX) return;
        *left = SIZE_MAX;
        node_done(false);
      };
      for (const auto& cid : ids) {
        const bool sent = c->command({"CLIENT", "KILL", "ID", cid}, [left, node_done, failed_once](redisReply* k) {
          if (k == nullptr) failed_once();
          else if (*left != SIZE_MAX && --*left == 0) node_done(true);
        });
        if (!sent) failed_once();
      }
    });
    if (!listed) node_done(false);
  }
}

// Entries retired at or before the barrier: their keys are checked on their nodes,
// then each is removed (absent) or made live again (present), if unchanged.
void Coordinator::settle_round() {
  if (settle_in_flight_ || !main_->up()) return;
  SettleRound& round = round_;
  round.items.clear();
  while (!settling_.empty() && round.items.size() < kMaxSettle && settling_.begin()->first <= barrier_) {
    auto node = settling_.extract(settling_.begin());
    forget_waiting(node.mapped().key);
    round.items.push_back(std::move(node.mapped()));
    if (spare_settling_.size() < kMaxSpareNodes) spare_settling_.push_back(std::move(node));
  }
  if (round.items.empty()) return;
  settle_in_flight_ = true;
  ++round.id;
  round.present.assign(round.items.size(), -1);
  round.left = 0;
  for (size_t k = 0; k < round.items.size(); ++k) {
    const Waiting& w = round.items[k];
    if (is_tag(w.key)) {
      // No single key to look for: a write through the entry before the barrier
      // (after a FLUSHALL, say) may have left any key of the tag. A scan of the node
      // begun after the barrier finds it if it is there.
      const auto seen = sweep_->tag_seen(w.node, w.key, w.seq);
      round.present[k] = seen ? (*seen ? 1 : 0) : -2;
      continue;
    }
    ControlConn* c = node_conn(w.node);
    if (c == nullptr) continue;
    // The capture fits std::function's own storage: no allocation per key.
    const bool sent = c->command({"EXISTS", w.key}, [this, tag = round.id << 16 | k](redisReply* r) {
      on_exists(tag, r);
    });
    if (sent) ++round.left;  // else unknown (-1): settled later
  }
  if (round.left == 0) finish_round();
}

void Coordinator::on_exists(uint64_t tag, redisReply* r) {
  if (!settle_in_flight_ || tag >> 16 != round_.id) return;  // another term's round
  const size_t k = tag & 0xffff;
  if (r != nullptr && r->type == REDIS_REPLY_INTEGER) round_.present[k] = r->integer > 0 ? 1 : 0;
  if (--round_.left == 0) finish_round();
}

void Coordinator::finish_round() {
  SettleRound& round = round_;
  round.gone.clear();
  round.back.clear();
  for (size_t k = 0; k < round.items.size(); ++k) {
    Waiting& w = round.items[k];
    if (round.present[k] == 0) round.gone.push_back(&w);
    else if (round.present[k] == 1) round.back.push_back(&w);
    else if (round.present[k] == -2 && remember_waiting(w.key)) tags_waiting_.push_back(std::move(w));
    else if (round.present[k] == -1)  // its node is unreachable: later
      settle_later(std::move(w.key), w.node, std::move(w.value), w.seq);
  }
  if (!round.gone.empty()) send_settle('D', round.gone);
  if (!round.back.empty()) send_settle('P', round.back);
  settle_in_flight_ = false;
}

bool Coordinator::remember_waiting(const std::string& key) {
  if (spare_keys_.empty()) return waiting_keys_.insert(key).second;
  auto node = std::move(spare_keys_.back());
  spare_keys_.pop_back();
  node.value() = key;
  auto placed = waiting_keys_.insert(std::move(node));
  if (!placed.inserted) spare_keys_.push_back(std::move(placed.node));
  return placed.inserted;
}

void Coordinator::forget_waiting(const std::string& key) {
  auto node = waiting_keys_.extract(key);
  if (!node.empty() && spare_keys_.size() < kMaxSpareNodes) spare_keys_.push_back(std::move(node));
}

void Coordinator::send_settle(char mode, const std::vector<const Waiting*>& items) {
  for (size_t from = 0; from < items.size(); from += kMaxBatch) {
    const size_t n = std::min(kMaxBatch, items.size() - from);
    resp::Buffer call;
    scripts::encode_head(call, Script::Settle, n, n + 4 + 2 * n);
    for (size_t k = 0; k < n; ++k) resp::add_bulk(call, MainStore::bucket_name(items[from + k]->key));
    resp::add_bulk(call, kEventsChannel);
    resp::add_bulk(call, store_.origin());
    resp::add_bulk(call, lease_value_);
    resp::add_bulk(call, std::string_view(&mode, 1));
    for (size_t k = 0; k < n; ++k) {
      resp::add_bulk(call, items[from + k]->key);
      resp::add_bulk(call, items[from + k]->value);
    }
    // Not sent (the main server went down meanwhile): the entries stay retiring, and
    // the sweep finds them again.
    (void)main_->command_encoded(call.view(), [this, mode](redisReply* r) {
      if (lease_lost(r) || r == nullptr || r->type != REDIS_REPLY_INTEGER) return;
      (mode == 'D' ? counters_.removed : counters_.revived) += static_cast<uint64_t>(r->integer);
    });
  }
}

}  // namespace headroom::balancer
