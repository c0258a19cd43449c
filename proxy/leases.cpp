#include "proxy/leases.h"

#include <algorithm>

#include "proxy/backend_conn.h"
#include "proxy/client_conn.h"
#include "proxy/server.h"

namespace headroom::proxy {

Leases::Leases(Server& server) : server_(server), per_node_(server.nodes().size(), 0) {}

Leases::~Leases() { shutdown_all(); }

bool Leases::open(ClientConn* client, balancer::NodeIndex node, std::string& error) {
  const uint32_t limit = server_.config().max_leases_per_node;
  if (per_node_[node] >= limit) {
    error = "ERR node " + server_.nodes()[node].name() + " has " + std::to_string(limit) +
            " leased connections (limits.max_leases_per_node); try again";
    return false;
  }
  const uint64_t id = ++last_id_;
  auto conn = std::make_unique<BackendConn>(server_, node, server_.config().nodes[node]);
  conn->set_lessee(client);
  BackendConn* c = conn.get();
  ids_[c] = id;
  open_.emplace(id, Open{std::move(conn), node});
  ++per_node_[node];
  Lease& lease = client->lease();
  lease = Lease{};
  lease.conn = c;
  lease.node = node;
  c->start();
  return true;
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
  lease.conn->set_lessee(nullptr);
  dropped_.push_back(ids_.at(lease.conn));
  std::erase(ending_, client);
  lease = Lease{};
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
    dropped_.push_back(ids_.at(lease.conn));
    lease = Lease{};
    ending_.erase(ending_.begin() + static_cast<std::ptrdiff_t>(i));
    client->pump();  // a request that waited for the lease to end (a WATCH of another node's keys)
  }
  std::vector<uint64_t> closing;
  closing.swap(dropped_);
  for (uint64_t id : closing) close(id);
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
  for (auto& [id, o] : open_) o.conn->check_timeouts(now_ms, request_timeout_ms);
}

void Leases::shutdown_all() {
  for (auto& [id, o] : open_) {
    o.conn->set_lessee(nullptr);
    o.conn->shutdown();
  }
}

void Leases::sent_counts(std::vector<uint64_t>& out) const {
  for (const auto& [id, o] : open_) {
    out.push_back(id);
    out.push_back(o.conn->sent_count());
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
