// The connections to one data node (backend_connections of them), and which one a
// client's commands take. A client always takes the same one, so its commands to
// the node stay in the order it sent them whatever the pool size (spreading one
// client's pipeline over several connections let a GET overtake the SET before it).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "proxy/backend_conn.h"

namespace headroom::proxy {

class BackendPool {
 public:
  void add(std::unique_ptr<BackendConn> c) { conns_.push_back(std::move(c)); }

  // The connection for the client with id `client_id` (commands of no client: 0).
  BackendConn& for_client(uint64_t client_id) {
    return conns_.size() == 1 ? *conns_[0] : *conns_[client_id % conns_.size()];
  }

  // Some connection is up (placement sends new keys only to nodes the data path reaches).
  bool any_connected() const {
    for (const auto& c : conns_)
      if (c->connected()) return true;
    return false;
  }

  std::vector<std::unique_ptr<BackendConn>>& all() { return conns_; }
  const std::vector<std::unique_ptr<BackendConn>>& all() const { return conns_; }

 private:
  std::vector<std::unique_ptr<BackendConn>> conns_;
};

}  // namespace headroom::proxy
