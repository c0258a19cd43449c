// The one owner of a request's life: requests come from here and go back here, from
// one function, once two things are true: the client is done with the request (its
// reply was written, or the client has gone) and nothing is outstanding (every
// fragment and placement it sent has answered). Whichever of the two happens last
// frees it, so a request is never freed while a node or the main server may still
// answer it, nor kept after both are over.
#pragma once

#include <vector>

#include "balancer/ledger.h"
#include "proxy/request.h"

namespace headroom::proxy {

class RequestPool {
 public:
  explicit RequestPool(balancer::Ledger& ledger) : ledger_(ledger) {}
  ~RequestPool() {
    for (Request* r : free_) delete r;
  }
  RequestPool(const RequestPool&) = delete;
  RequestPool& operator=(const RequestPool&) = delete;

  Request* acquire() {
    if (free_.empty()) return new Request;
    Request* r = free_.back();
    free_.pop_back();
    return r;
  }

  // The client wrote the reply or left: the request goes once nothing is outstanding.
  void release(Request* r) {
    r->owner_done = true;
    settle(r);
  }

  // Something outstanding has answered: frees the request if the client is done with it.
  void settle(Request* r) {
    if (r->owner_done && r->outstanding() == 0) free(r);
  }

 private:
  void free(Request* r) {
    // Keys placed whose writes were never answered (the request was refused or its
    // client left first) are not on their nodes: their reservations end unstored.
    for (auto& p : r->placed)
      if (!p.ended) ledger_.write_done(p.reservation, false);
    r->reset();
    if (free_.size() < 4096) free_.push_back(r);
    else delete r;
  }

  balancer::Ledger& ledger_;
  std::vector<Request*> free_;
};

}  // namespace headroom::proxy
