#include "balancer/holds.h"

#include <vector>

#include "balancer/control_conn.h"
#include "balancer/directory_scripts.h"

namespace headroom::balancer {

void Holds::send(const char* op, std::string_view key, std::string_view origin) {
  // Best effort: with the main server down nothing can be removed either, and a
  // reconnection registers again, which takes every hold again.
  const std::string set = std::string(scripts::kHoldsPrefix) + std::string(origin);
  main_.post({op, set, key});
}

void Holds::hold(std::string_view dir_key, std::string_view origin) {
  auto [it, fresh] = keys_.try_emplace(std::string(dir_key));
  if (fresh) send("SADD", dir_key, origin);
  ++it->second.waiters;
}

void Holds::release(std::string_view dir_key, uint64_t now_ms) {
  auto it = keys_.find(std::string(dir_key));
  if (it == keys_.end() || it->second.waiters == 0) return;
  if (--it->second.waiters == 0) it->second.idle_since_ms = now_ms;
}

void Holds::tick(uint64_t now_ms, std::string_view origin) {
  for (auto it = keys_.begin(); it != keys_.end();) {
    if (it->second.waiters == 0 && now_ms - it->second.idle_since_ms >= kLingerMs) {
      send("SREM", it->first, origin);
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
}

void Holds::resync(std::string_view origin) {
  const std::string set = std::string(scripts::kHoldsPrefix) + std::string(origin);
  main_.post({"DEL", set});
  registered(origin);
}

void Holds::registered(std::string_view origin) {
  for (const auto& [key, h] : keys_) send("SADD", key, origin);
}

}  // namespace headroom::balancer
