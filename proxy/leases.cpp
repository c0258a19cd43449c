#include "proxy/leases.h"

#include <algorithm>

#include "balancer/control_conn.h"
#include "proxy/backend_conn.h"
#include "proxy/client_conn.h"
#include "proxy/server.h"

namespace headroom::proxy {

Leases::Leases(Server& server)
    : server_(server), per_node_(server.nodes().size(), 0), idle_(2 * server.nodes().size()) {}

Leases::~Leases() { shutdown_all(); }

bool Leases::open(ClientConn* client, balancer::NodeIndex node, std::string& error) {
  BackendConn* c = nullptr;
  const bool resp3 = client->resp3();
  auto& idle = idle_[idle_slot(node, resp3)];
  while (c == nullptr && !idle.empty()) {  // one kept from an earlier lease, if still connected
    const uint64_t id = idle.back();
    idle.pop_back();
    auto it = open_.find(id);
    if (it == open_.end()) continue;
    if (it->second.conn->connected()) c = it->second.conn.get();
    else close(id);
  }
  if (c == nullptr) {
    const uint32_t limit = server_.config().max_leases_per_node;
    if (per_node_[node] >= limit) {
      error = "ERR node " + server_.nodes()[node].name() + " has " + std::to_string(limit) +
              " leased connections (limits.max_leases_per_node); try again";
      return false;
    }
    const uint64_t id = ++last_id_;
    auto conn = std::make_unique<BackendConn>(server_, node, server_.config().nodes[node], resp3);
    c = conn.get();
    ids_[c] = id;
    open_.emplace(id, Open{std::move(conn), node});
    ++per_node_[node];
    c->set_lessee(client);
    c->start();
  } else {
    c->set_lessee(client);
  }
  Lease& lease = client->lease();
  lease = Lease{};
  lease.conn = c;
  lease.node = node;
  return true;
}

size_t Leases::idle_count() const {
  size_t n = 0;
  for (const auto& v : idle_) n += v.size();
  return n;
}

void Leases::end_when_idle(ClientConn* client) {
  Lease& lease = client->lease();
  if (lease.conn == nullptr || lease.ending) return;
  lease.ending = true;
  ending_.push_back(client);
}

void Leases::drop(ClientConn* client) {
  Lease& lease = client->lease();
  if (lease.conn == nullptr) return;
  BackendConn* c = lease.conn;
  c->set_lessee(nullptr);
  const uint64_t id = ids_.at(c);
  std::erase(ending_, client);
  balancer::ControlConn* control = server_.poller().conn(lease.node);
  if (lease.blocking && c->connected() && c->node_client_id() != 0 && control != nullptr) {
    // Unblocked, not closed: an element popped for it just now still arrives, and is
    // given back (route_blocking.cpp); the connection closes once it is answered.
    c->flush();
    unblocking_.push_back(id);
    unblock(id, lease.node, 0);
  } else {
    dropped_.push_back(id);
  }
  lease = Lease{};
}

// CLIENT UNBLOCK of a gone client's lease, on its node's control connection. 0 means
// nothing was blocked there: its reply is on the way (it closes once that is in), or
// the blocking command has not reached the node yet (two connections: no order between
// them), so it is asked again, a bounded number of times, while the command is unanswered.
void Leases::unblock(uint64_t id, balancer::NodeIndex node, int attempt) {
  auto it = open_.find(id);
  balancer::ControlConn* control = server_.poller().conn(node);
  if (it == open_.end() || it->second.conn->inflight() == 0) return;  // answered: end_of_turn closes it
  if (control == nullptr || attempt >= kUnblockAttempts) {
    if (std::erase(unblocking_, id) != 0) dropped_.push_back(id);  // closed: Redis unblocks it as it goes
    return;
  }
  const std::string cid = std::to_string(it->second.conn->node_client_id());
  // Up (checked above): sent.
  (void)control->command({"CLIENT", "UNBLOCK", cid}, [this, id, node, attempt](redisReply* r) {
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER && r->integer == 1) return;
    unblock(id, node, attempt + 1);
  });
}

void Leases::end_of_turn() {
  // A lease whose client is done with it goes once its last reply is in.
  for (size_t i = 0; i < ending_.size();) {
    ClientConn* client = ending_[i];
    Lease& lease = client->lease();
    if (!lease.ending) {  // taken up again (a WATCH right after EXEC, on the same node)
      ending_.erase(ending_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    if (lease.conn->inflight() != 0) {
      ++i;
      continue;
    }
    lease.conn->set_lessee(nullptr);
    give_back(ids_.at(lease.conn), lease.node, !lease.node_watches && !lease.lost);
    lease = Lease{};
    ending_.erase(ending_.begin() + static_cast<std::ptrdiff_t>(i));
    client->pump();  // a request that waited for the lease to end (a WATCH of another node's keys)
  }
  std::erase_if(unblocking_, [this](uint64_t id) {
    auto it = open_.find(id);
    if (it == open_.end()) return true;
    if (it->second.conn->inflight() != 0) return false;
    dropped_.push_back(id);
    return true;
  });
  std::vector<uint64_t> closing;
  closing.swap(dropped_);
  for (uint64_t id : closing) close(id);
}

void Leases::give_back(uint64_t id, balancer::NodeIndex node, bool reusable) {
  auto it = open_.find(id);
  if (reusable && it != open_.end() && it->second.conn->connected()) {
    auto& idle = idle_[idle_slot(node, it->second.conn->resp3())];
    if (idle.size() < kIdlePerNode) {
      idle.push_back(id);
      return;
    }
  }
  dropped_.push_back(id);
}

void Leases::close(uint64_t id) {
  auto it = open_.find(id);
  if (it == open_.end()) return;
  BackendConn* c = it->second.conn.get();
  c->shutdown();  // what is still in flight fails: its requests are orphans by now
  server_.forget_dirty(c);
  --per_node_[it->second.node];
  ids_.erase(c);
  open_.erase(it);
}

void Leases::check_timeouts(uint64_t now_ms, uint32_t request_timeout_ms) {
  for (auto& [id, o] : open_) {
    // A blocking command waits as long as its client asked: no request timeout (TCP
    // keepalive finds a node that went away).
    const ClientConn* c = o.conn->lessee();
    if (c != nullptr && c->lease().blocking) continue;
    if (c == nullptr && std::find(unblocking_.begin(), unblocking_.end(), id) != unblocking_.end()) continue;
    o.conn->check_timeouts(now_ms, request_timeout_ms);
  }
}

void Leases::shutdown_all() {
  for (auto& [id, o] : open_) {
    o.conn->set_lessee(nullptr);
    o.conn->shutdown();
  }
}

void Leases::sent_counts(std::vector<uint64_t>& out) const {
  for (const auto& [id, o] : open_) {
    // A blocking command in flight (the last sent: nothing of its client goes after
    // it) is not waited for: it may wait for ever, and whatever it writes when it
    // runs is to keys it holds, whose entries no removal can take meanwhile.
    const ClientConn* c = o.conn->lessee();
    const bool blocked = c != nullptr && c->lease().blocking;
    out.push_back(id);
    out.push_back(o.conn->sent_count() - (blocked ? 1 : 0));
  }
}

bool Leases::answered_all(const std::vector<uint64_t>& sent, size_t from) const {
  for (size_t i = from; i + 1 < sent.size(); i += 2) {
    auto it = open_.find(sent[i]);
    if (it != open_.end() && it->second.conn->answered_count() < sent[i + 1]) return false;
  }
  return true;
}

}  // namespace headroom::proxy
