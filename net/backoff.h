// Reconnect pacing shared by every outbound connection: the wait doubles after each
// failed attempt up to a ceiling, and starts over only after a connection that
// lasted, so a server that accepts and then drops every connection (a certificate
// it refuses, its maxclients) is retried at the backoff's pace, not at the floor.
#pragma once

#include <algorithm>
#include <cstdint>

namespace headroom::net {

class Backoff {
 public:
  Backoff(uint32_t initial_ms, uint32_t max_ms, uint64_t healthy_ms)
      : initial_ms_(initial_ms), max_ms_(max_ms), healthy_ms_(healthy_ms), next_ms_(initial_ms) {}

  // A connection became usable at loop time `now_ms`.
  void connected(uint64_t now_ms) { up_since_ms_ = now_ms; }

  // The connection (or an attempt) failed at `now_ms`: how long to wait before the next.
  uint32_t next_delay(uint64_t now_ms) {
    if (up_since_ms_ != 0 && now_ms - up_since_ms_ >= healthy_ms_) next_ms_ = initial_ms_;
    up_since_ms_ = 0;
    uint32_t wait = next_ms_;
    next_ms_ = std::min(next_ms_ * 2, max_ms_);
    return wait;
  }

 private:
  uint32_t initial_ms_;
  uint32_t max_ms_;
  uint64_t healthy_ms_;
  uint32_t next_ms_;
  uint64_t up_since_ms_ = 0;
};

}  // namespace headroom::net
