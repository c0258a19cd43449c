#include "proxy/server.h"

#include "balancer/directory_scripts.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "balancer/directory_scripts.h"
#include "net/address.h"
#include "net/handle.h"
#include "proxy/admin_http.h"
#include "proxy/client_conn.h"
#include "proxy/monitor.h"
#include "proxy/router.h"

namespace headroom::proxy {

namespace {
constexpr uint64_t kShutdownGraceMs = 5000;

}  // namespace

Server::Server(uv_loop_t* loop, conf::Config config, std::string config_path, net::TlsContexts tls)
    : loop_(loop), config_(std::move(config)), config_path_(std::move(config_path)), nodes_(config_.nodes),
      ledger_(nodes_), requests_(ledger_), tls_(std::move(tls)) {
  const auto control = balancer::ControlTimeouts::from(config_);
  main_store_ = std::make_unique<balancer::MainStore>(loop_, config_.main, nodes_, directory_, tls_.backends, control);
  poller_ = std::make_unique<balancer::MemoryPoller>(loop_, nodes_, ledger_, config_.poll_interval_ms, tls_.backends,
                                                     control);
  coordinator_ = std::make_unique<balancer::Coordinator>(loop_, config_, nodes_, *main_store_, ledger_, tls_.backends, control);
  main_store_->set_write_tracker(this);
  main_store_->set_ledger(&ledger_);
  router_ = std::make_unique<Router>(*this);
  leases_ = std::make_unique<Leases>(*this);
  publisher_ = std::make_unique<balancer::ControlConn>(loop_, "main " + config_.main.name + " (publish)",
                                                       config_.main.address, config_.main.password, tls_.backends,
                                                       control);
  publisher_->set_client_name("hr-publish");
  for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i) add_pools(i);
  slowlog_.configure(config_.slowlog_slower_than_us, config_.slowlog_max_len);
  commands_ = resp::all_commands().data();
  command_stats_.assign(resp::all_commands().size(), CommandStats{});
  prepare_ = net::new_handle(loop_, this, uv_prepare_init);
  shutdown_timer_ = net::new_handle(loop_, this, uv_timer_init);
  timeout_timer_ = net::new_handle(loop_, this, uv_timer_init);
  pause_timer_ = net::new_handle(loop_, this, uv_timer_init);
}

Server::~Server() {
  // Stop everything that may still call back into requests while all members live.
  admin_.reset();
  coordinator_->stop();
  main_store_->stop();
  poller_->stop();
  publisher_->stop();
  for (auto& pool : pools_)
    for (auto& b : pool.all()) b->shutdown();
  std::vector<ClientConn*> all(clients_.begin(), clients_.end());
  for (ClientConn* c : all) c->close();
  delete_closed_clients();
  leases_.reset();
  pools_.clear();
  net::close_and_delete(prepare_);
  net::close_and_delete(shutdown_timer_);
  net::close_and_delete(timeout_timer_);
  net::close_and_delete(pause_timer_);
  for (auto& l : listeners_)
    if (l.tcp != nullptr) net::close_and_delete(l.tcp);
}

int Server::start() {
  start_time_ms_ = uv_now(loop_);
  uv_prepare_start(prepare_, &Server::on_prepare);
  uint32_t shortest = config_.request_timeout_ms ? config_.request_timeout_ms : 1000u;
  uint64_t period = std::clamp<uint64_t>(shortest / 4, 10, 250);
  uv_timer_start(
      timeout_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        uint64_t now = uv_now(self->loop_);
        // By index: a request failed here may let its client run HEADROOM RELOAD, which
        // may add pools.
        for (size_t p = 0; p < self->pools_.size(); ++p)
          for (size_t b = 0; b < self->pools_[p].all().size(); ++b)
            self->pools_[p].all()[b]->check_timeouts(now, self->config_.request_timeout_ms);
        self->leases_->check_timeouts(now, self->config_.request_timeout_ms);
        self->close_idle_clients(now);
        self->parked_timer_due_ = true;  // requests waiting for a move check their bound
        self->refresh_shared_state(now);
      },
      period, period);
  for (auto& pool : pools_)
    for (auto& b : pool.all()) b->start();
  poller_->start();
  publisher_->start([](bool) {});
  // Listen only once the directory is loaded: from then on a key missing from the
  // local cache is known to be absent.
  if (int rc = bind_listeners(); rc != 0) return rc;
  if (config_.admin.enabled) {
    admin_ = std::make_unique<AdminHttp>(*this);
    if (int rc = admin_->start(); rc != 0) return rc;
  }
  main_store_->start(
      [this] {
        if (stopping_) return;
        if (listen() != 0) fail("cannot listen");
      },
      [this](const std::string& why) { fail(why); });
  coordinator_->start();
  spdlog::info("waiting for the main server {} to load the directory", conf::to_string(config_.main.address));
  return 0;
}

// Binds now, so that a port in use is reported at startup; listens once the directory
// has loaded.
int Server::bind_listeners() {
  const net::TlsContext* client_tls = tls_.clients.get();  // replaced by reload_certificates
  listeners_.push_back({nullptr, config_.listen, config_.tls.separate_port ? nullptr : client_tls});
  if (config_.tls.separate_port) listeners_.push_back({nullptr, config_.tls.listen, client_tls});
  for (auto& l : listeners_) {
    l.tcp = new uv_tcp_t;
    uv_tcp_init(loop_, l.tcp);
    l.tcp->data = this;
    sockaddr_storage addr;
    int rc = net::to_sockaddr(l.address, addr);
    if (rc == 0) rc = uv_tcp_bind(l.tcp, reinterpret_cast<const sockaddr*>(&addr), 0);
    if (rc != 0) {
      spdlog::critical("cannot listen on {}: {}", conf::to_string(l.address), uv_strerror(rc));
      return rc;
    }
  }
  return 0;
}

int Server::listen() {
  for (auto& l : listeners_) {
    int rc = uv_listen(reinterpret_cast<uv_stream_t*>(l.tcp), 511, &Server::on_connection);
    if (rc != 0) {
      spdlog::critical("cannot listen on {}: {}", conf::to_string(l.address), uv_strerror(rc));
      return rc;
    }
    spdlog::info("headroom {} listening on {}{} ({} data nodes, {} directory entries)", HEADROOM_VERSION,
                 conf::to_string(l.address), l.tls ? " (TLS)" : "", nodes_.size(), directory_.size());
  }
  listening_ = true;
  return 0;
}

void Server::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<Server*>(listener->data);
  if (status < 0 || self->stopping_) return;
  const net::TlsContext* tls = nullptr;
  for (const auto& l : self->listeners_)
    if (reinterpret_cast<uv_stream_t*>(l.tcp) == listener) tls = l.tls;
  auto* c = new ClientConn(*self, self->next_client_id());
  self->clients_.insert(c);
  if (!c->accept(listener, tls)) {
    c->close();
    return;
  }
  ++self->stats_.connections_received;
  if (self->clients_.size() > self->config_.max_clients) {
    // As Redis: tell the client why, then close (over TLS, once the handshake is done).
    ++self->stats_.rejected_connections;
    c->refuse("ERR max number of clients reached");
  }
}

// As Redis's `timeout`: a client that sent nothing for client_idle_s and waits for
// no reply is closed.
void Server::close_idle_clients(uint64_t now_ms) {
  uint64_t limit_ms = uint64_t{config_.client_idle_timeout_s} * 1000;
  if (limit_ms == 0 || now_ms - last_idle_check_ms_ < 1000) return;
  last_idle_check_ms_ = now_ms;
  std::vector<ClientConn*> idle;
  for (ClientConn* c : clients_)
    // As Redis: a subscriber waiting for messages is not idle
    if (!c->closed() && c->idle() && !c->subscribed() && now_ms - c->last_read_ms() > limit_ms) idle.push_back(c);
  for (ClientConn* c : idle) c->close();
}

void Server::on_prepare(uv_prepare_t* p) { static_cast<Server*>(p->data)->end_of_turn(); }

// Once per loop turn, before the loop waits for I/O: everything queued for a socket
// goes out in one write, then the clients that closed during the turn are deleted.
void Server::end_of_turn() {
  ++turn_;
  if (!move_parked_.empty()) pump_parked();
  if (pause_release_due_) release_paused();
  if (leases_->any_to_close()) leases_->end_of_turn();  // first: a lease that ends may let a request go
  for (size_t i = 0; i < dirty_backends_.size(); ++i) dirty_backends_[i]->flush();
  dirty_backends_.clear();
  for (size_t i = 0; i < dirty_clients_.size(); ++i) dirty_clients_[i]->flush();
  dirty_clients_.clear();
  if (!closed_clients_.empty()) delete_closed_clients();
  if (main_store_->acks_waiting()) main_store_->check_acks();
  if (stopping_) maybe_finish_shutdown();
}

// [how many shared connections], their counts (a reload appends new nodes' connections
// after the others, so the first ones keep their places), then (lease id, count) pairs.
void Server::sent_counts(std::vector<uint64_t>& out) const {
  out.assign(1, 0);
  for (const auto& pool : pools_)
    for (const auto& b : pool.all()) out.push_back(b->sent_count());
  out[0] = out.size() - 1;
  leases_->sent_counts(out);
}

bool Server::answered_all(const std::vector<uint64_t>& sent) const {
  if (sent.empty()) return true;
  const size_t shared = sent[0];
  size_t i = 0;
  for (const auto& pool : pools_)
    for (const auto& b : pool.all()) {
      if (i == shared) break;
      if (b->answered_count() < sent[1 + i++]) return false;
    }
  return leases_->answered_all(sent, 1 + shared);
}

void Server::on_fragment_reply(Request* req, uint32_t fragment, std::string_view reply) {
  router_->on_fragment_reply(req, fragment, reply);
}

size_t Server::blocked_clients() const {
  size_t n = 0;
  for (const ClientConn* c : clients_) n += c->lease().blocking || c->pause_held() ? 1 : 0;  // as Redis counts them
  return n;
}

ClientConn* Server::client_by_id(uint64_t id) const {
  for (ClientConn* c : clients_)
    if (c->id() == id && !c->closed()) return c;
  return nullptr;
}

// Node i's connections: RESP2 ones, then RESP3 ones (for clients that said HELLO 3: the
// nodes' replies are forwarded as they are, so they must be in the client's protocol).
void Server::add_pools(balancer::NodeIndex i) {
  pools_.resize(2 * (size_t{i} + 1));
  for (int resp3 = 0; resp3 < 2; ++resp3)
    for (uint32_t c = 0; c < std::max<uint32_t>(1, config_.backend_connections); ++c)
      pools_[2 * size_t{i} + resp3].add(std::make_unique<BackendConn>(*this, i, config_.nodes[i], resp3 != 0));
}

const char* latency_class_name(LatencyClass c) {
  switch (c) {
    case LatencyClass::Single: return "single";
    case LatencyClass::Split: return "split";
    case LatencyClass::SameNode: return "same_node";
    case LatencyClass::FanOut: return "fan_out";
    case LatencyClass::Local: return "local";
    default: return "other";
  }
}

LatencyClass Server::latency_class(const Request& r) {
  if (r.cmd == nullptr) return LatencyClass::Other;
  switch (r.cmd->route) {
    case resp::Route::Single: return LatencyClass::Single;
    case resp::Route::Split: return LatencyClass::Split;
    case resp::Route::SameNode: return LatencyClass::SameNode;
    case resp::Route::FanOut: return LatencyClass::FanOut;
    case resp::Route::Local: return LatencyClass::Local;
    default: return LatencyClass::Other;
  }
}

// A slow request: its command's name (its arguments may already be gone from the
// client's buffer: headroom keeps none), the client and the node it went to.
void Server::log_slow(const Request& r, uint64_t ns) {
  SlowEntry e;
  e.unix_time = static_cast<int64_t>(std::time(nullptr));
  e.duration_us = ns / 1000;
  // "slowlog|get" -> "slowlog", "get": the command as typed, without its arguments
  std::string_view name = r.cmd != nullptr ? r.cmd->name : std::string_view("(unknown)");
  for (size_t bar; (bar = name.find('|')) != std::string_view::npos; name.remove_prefix(bar + 1))
    e.args.emplace_back(name.substr(0, bar));
  e.args.emplace_back(name);
  if (r.client != nullptr) {
    e.client_addr = r.client->peer();
    e.client_name = r.client->name();
  }
  if (r.fragments.size() == 1 && r.fragments[0].node < nodes_.size()) e.node = nodes_[r.fragments[0].node].name();
  slowlog_.add(std::move(e));
}

void Server::client_closed(ClientConn* c) {
  closed_clients_.push_back(c);
  std::erase(monitors_, c);
  std::erase(move_parked_, c);
  std::erase(pause_parked_, c);
}

void Server::pause_clients(PauseKind kind, uint64_t end_ms) {
  const uint64_t now = uv_now(loop_);
  if (pause_ != PauseKind::Off) {  // as Redis: the stronger kind, the later end
    kind = std::max(kind, pause_);
    end_ms = std::max(end_ms, pause_end_ms_);
  }
  if (end_ms <= now) {  // over already (CLIENT PAUSE 0)
    end_pause();
    return;
  }
  if (pause_ == PauseKind::Off) spdlog::info("clients paused ({}) for {} ms", kind == PauseKind::All ? "all" : "write",
                                             end_ms - now);
  pause_ = kind;
  pause_end_ms_ = end_ms;
  uv_timer_start(
      pause_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        if (uv_now(self->loop_) >= self->pause_end_ms_) self->end_pause();
      },
      end_ms - now, 0);
}

void Server::end_pause() {
  if (pause_ != PauseKind::Off) spdlog::info("clients unpaused: {} held go on", pause_parked_.size());
  pause_ = PauseKind::Off;
  pause_end_ms_ = 0;
  uv_timer_stop(pause_timer_);
  // Not pumped here: this may run inside a client's command (CLIENT UNPAUSE).
  pause_release_due_ = !pause_parked_.empty();
}

bool Server::held_by_pause(Request* req) {
  if (req->failed) return false;  // as Redis: a command refused (arity, syntax) is answered at once
  if (uv_now(loop_) >= pause_end_ms_) {  // over, though its timer has not run yet
    end_pause();
    return false;
  }
  const resp::CommandInfo* cmd = req->cmd;
  const bool writes = cmd != nullptr && (cmd->has(resp::kWrite) || cmd->has(resp::kMayReplicate) || req->block_writes);
  if (pause_ != PauseKind::All && !writes) return false;
  ClientConn* c = req->client;
  if (!c->pause_held()) {
    c->set_pause_held(true);
    pause_parked_.push_back(c);
  }
  return true;
}

void Server::release_paused() {
  pause_release_due_ = false;
  std::vector<ClientConn*> held;
  held.swap(pause_parked_);
  for (ClientConn* c : held) {
    c->set_pause_held(false);
    if (!c->closed()) c->pump();  // one held again (another pause began) parks itself again
  }
}

void Server::park_for_move(ClientConn* c) {
  if (std::find(move_parked_.begin(), move_parked_.end(), c) == move_parked_.end()) move_parked_.push_back(c);
}

// Clients whose next request waits for a move go on when the directory changed (a
// move ended), or at the timeout timer (their bound).
void Server::pump_parked() {
  if (directory_.version() == parked_version_ && !parked_timer_due_) return;
  parked_version_ = directory_.version();
  parked_timer_due_ = false;
  std::vector<ClientConn*> parked;
  parked.swap(move_parked_);
  for (ClientConn* c : parked)
    if (!c->closed()) c->pump();  // one still waiting parks itself again
}

// What every proxy shares on the main server, read every second: the nodes being
// drained (hr:draining: no new key goes there) and the node list (hr:nodes: one that
// differs from this proxy's stops its placements, proxy/reload.cpp).
void Server::refresh_shared_state(uint64_t now) {
  if (now - last_draining_ms_ < 1000 || draining_in_flight_ || publisher() == nullptr) return;
  last_draining_ms_ = now;
  if (!node_list_recorded_) record_node_list();
  // Each proxy's own list: a move to a node waits until every registered proxy has it.
  publisher_->post({"HSET", balancer::scripts::kProxyNodesKey, main_store_->origin(), node_list()});
  // Up (checked above): sent.
  (void)publisher_->command({"GET", balancer::scripts::kNodesKey}, [this](redisReply* r) {
    if (r == nullptr || r->type != REDIS_REPLY_STRING) return;
    const bool differs = balancer::reply_text(r) != node_list();
    if (differs && !node_list_differs_)
      spdlog::warn("another proxy recorded a different node list ({}): this one places no new key until its config "
                   "is reloaded to match", balancer::reply_text(r));
    else if (!differs && node_list_differs_)
      spdlog::info("the node list recorded on the main server is this proxy's again");
    node_list_differs_ = differs;
  });
  if (!draining_announced_) {
    // Nodes the config marks `drain: true` join the set (HEADROOM DRAIN <node> OFF takes one out).
    for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i)
      if (config_.nodes[i].drain) drain_node(i, true, [](const std::string&) {});  // read back below, or next second
    draining_announced_ = true;
  }
  draining_in_flight_ = publisher_->command({"SMEMBERS", balancer::scripts::kDrainingKey}, [this](redisReply* r) {
    draining_in_flight_ = false;
    if (r == nullptr || r->type != REDIS_REPLY_ARRAY) return;
    std::vector<bool> draining(nodes_.size(), false);
    for (size_t i = 0; i < r->elements; ++i)
      if (auto n = nodes_.find(balancer::reply_text(r->element[i]))) draining[*n] = true;
    for (balancer::NodeIndex i = 0; i < nodes_.size(); ++i) set_draining(i, draining[i]);
  });
}

void Server::drain_node(balancer::NodeIndex node, bool on, AdminDone done) {
  if (publisher() == nullptr) {
    done("ERR main server " + config_.main.name + " is unavailable: the drain is recorded there");
    return;
  }
  set_draining(node, on);  // this proxy at once; the others within a second
  // Up (checked above): sent.
  (void)publisher_->command(
      {on ? "SADD" : "SREM", balancer::scripts::kDrainingKey, nodes_[node].name()},
      [done](redisReply* r) {
        if (r == nullptr)
          done("ERR main server connection lost: the drain may not be recorded");
        else if (r->type == REDIS_REPLY_ERROR)
          done(std::string(balancer::reply_text(r)));
        else
          done("");
      });
}

void Server::ask_rebalancer(std::string what, AdminDone done) {
  if (publisher() == nullptr) {
    done("ERR main server " + config_.main.name + " is unavailable: the rebalancer is asked through it");
    return;
  }
  // Up (checked above): sent.
  (void)publisher_->command({"RPUSH", balancer::scripts::kAskedKey, what}, [done](redisReply* r) {
    if (r == nullptr) done("ERR main server connection lost: the request may not be recorded");
    else if (r->type == REDIS_REPLY_ERROR) done(std::string(balancer::reply_text(r)));
    else done("");
  });
}

void Server::set_draining(balancer::NodeIndex node, bool on) {
  auto& n = nodes_[node];
  if (n.draining == on) return;
  spdlog::info("node {}: {}", n.name(), on ? "draining: it takes no new keys, and its keys move to the others"
                                           : "no longer draining");
  n.draining = on;
  n.drain_started_ms = uv_now(loop_);
  n.drain_start_keys = ledger_.figures(node).keys;
}

void Server::delete_closed_clients() {
  // The dirty list may name them (flushing a closed client does nothing); drop them
  // from it before they go.
  std::vector<ClientConn*> closed;
  closed.swap(closed_clients_);
  for (ClientConn* c : closed) {
    std::erase(dirty_clients_, c);
    // Its requests become orphans: those still waiting on a node or the main server
    // are freed when the last answer arrives; the rest now.
    c->queue_.drain([this](Request* r) {
      r->client = nullptr;
      // One still answered later reads its arguments then (what a write added, a key
      // placed for it, what a blocking pop took): they must outlive the client's buffer.
      if (r->outstanding() > 0) r->take_ownership();
      requests_.release(r);
    });
    clients_.erase(c);
    delete c;
  }
}

void Server::reload_certificates() {
  if (!config_.tls.enabled && !config_.backend_tls.enabled) {
    spdlog::info("SIGHUP: no tls or backend_tls in the config: no certificates to reload");
    return;
  }
  net::TlsContexts fresh;
  std::string error;
  if (!net::make_tls_contexts(config_, fresh, error)) {
    spdlog::error("SIGHUP: certificates not reloaded, the current ones stay: {}", error);
    return;
  }
  // Open sessions keep working: each SSL holds a reference to the SSL_CTX it began with.
  tls_ = std::move(fresh);
  for (auto& l : listeners_)
    if (l.tls != nullptr) l.tls = tls_.clients.get();
  spdlog::info("SIGHUP: certificates reloaded{}{}", config_.tls.enabled ? " (clients)" : "",
               config_.backend_tls.enabled ? " (backends)" : "");
}

void Server::feed_monitors(const ClientConn& from, std::span<const std::string_view> argv) {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  const resp::CommandInfo* cmd = resp::lookup_command(argv);
  std::string line = monitor_line(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()),
                                  from.peer(), argv, cmd != nullptr && cmd->has(resp::kRedactArgs));
  // A monitor closed for its output limit leaves the list in client_closed.
  std::vector<ClientConn*> targets(monitors_);
  for (ClientConn* m : targets) m->feed_monitor(line);
}

// Something headroom cannot serve through: stop, and exit with a failure status.
void Server::fail(const std::string& why) {
  spdlog::critical("stopping: {}", why);
  failed_ = true;
  shutdown();
}

void Server::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("shutting down: delivering in-flight replies to {} clients", clients_.size());
  end_pause();  // what a pause holds is run and answered too
  for (auto& l : listeners_)
    if (l.tcp != nullptr) net::close_and_delete(l.tcp);
  listeners_.clear();
  if (admin_) admin_->stop();  // its listener and connections would keep the loop running
  std::vector<ClientConn*> all(clients_.begin(), clients_.end());
  // A blocked client's reply may never come: it is closed now (its connection is
  // unblocked, and what it took given back); the others get their replies first.
  for (ClientConn* c : all) {
    if (c->lease().blocking) c->close();
    else c->close_after_replies();
  }
  uv_timer_start(
      shutdown_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<Server*>(t->data);
        spdlog::warn("shutdown grace period over: closing {} clients", self->clients_.size());
        self->grace_over_ = true;
        std::vector<ClientConn*> rest(self->clients_.begin(), self->clients_.end());
        for (ClientConn* c : rest) c->close();
      },
      kShutdownGraceMs, 0);
  maybe_finish_shutdown();
}

void Server::maybe_finish_shutdown() {
  if (!stopping_ || !clients_.empty()) return;
  // Blocked clients that left: their last replies (and what is given back) first.
  if (!grace_over_ && (leases_->unblocking() != 0 || give_backs_in_flight_ != 0)) return;
  if (!left_) {
    // Unregistered before the connections close, so no removal waits for this proxy
    // until its registration lapses; then everything stops.
    left_ = true;
    coordinator_->stop();
    main_store_->leave([this] { maybe_finish_shutdown(); });
    return;
  }
  uv_timer_stop(shutdown_timer_);
  uv_timer_stop(timeout_timer_);
  uv_timer_stop(pause_timer_);
  uv_prepare_stop(prepare_);
  poller_->stop();
  main_store_->stop();
  publisher_->stop();
  for (auto& pool : pools_)
    for (auto& b : pool.all()) b->shutdown();
  leases_->shutdown_all();
  // With every handle stopped, the loop ends and main() tears the rest down.
}

}  // namespace headroom::proxy
