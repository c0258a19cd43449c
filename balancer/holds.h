// Entries held while a client waits on their key (a blocking read, docs/directory.md
// "Held entries"). The coordinator removes no entry that a registered proxy holds:
// hr:holds:<proxy id> on the main server, a set of directory keys, dropped with the
// proxy's registration (fenced, or leaving). Without the hold, a consumer blocked on
// an empty list could lose its key's entry to the sweep or a FLUSHALL, and the
// producer's push would then be placed afresh, maybe on another node than the one
// where the consumer waits.
//
// Counted here per key: the hold is taken on the main server when this proxy's first
// waiter on the key starts, and given back kLingerMs after the last one left (a job
// queue's consumer re-issues BLPOP at once: no main-server round trip each time).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace headroom::balancer {

class ControlConn;

class Holds {
 public:
  static constexpr uint64_t kLingerMs = 5000;

  explicit Holds(ControlConn& main) : main_(main) {}

  void hold(std::string_view dir_key, std::string_view origin);
  void release(std::string_view dir_key, uint64_t now_ms);
  // Gives back the holds idle for kLingerMs (called every heartbeat).
  void tick(uint64_t now_ms, std::string_view origin);
  // This proxy registered (again, maybe under a new id): every hold is taken again.
  void registered(std::string_view origin);
  // The main server's connection came back: what was sent while it was down was
  // dropped. The set is written afresh (a missed release leaves nothing held).
  void resync(std::string_view origin);
  size_t held() const { return keys_.size(); }

 private:
  struct Hold {
    uint32_t waiters = 0;
    uint64_t idle_since_ms = 0;
  };
  void send(const char* op, std::string_view key, std::string_view origin);

  ControlConn& main_;
  std::unordered_map<std::string, Hold> keys_;
};

}  // namespace headroom::balancer
