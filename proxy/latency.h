// How long requests take, end to end (read from the client to reply queued for it):
// a histogram per command class for /metrics, and headroom's own slow log (SLOWLOG
// GET/LEN/RESET, in Redis's reply format). Cheap on the request path: the start is the
// time of the read that brought the request (one clock read per read, shared by a
// pipeline), the end the time of the loop turn that answers it (one clock read per
// turn), and the bucket a leading-zero count.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace headroom::proxy {

// Command classes: the routes, as an operator thinks of them.
enum class LatencyClass : uint8_t { Single, Split, SameNode, FanOut, Local, Other, kCount };
const char* latency_class_name(LatencyClass c);

struct LatencyHistogram {
  // Bucket b counts durations below 2^b microseconds (b = 0 .. kBuckets-2); the last
  // counts the rest. 2^22 us is about 4.2 s.
  static constexpr size_t kBuckets = 24;
  std::array<uint64_t, kBuckets> buckets{};
  uint64_t count = 0;
  uint64_t sum_ns = 0;

  void add(uint64_t ns) {
    const uint64_t us = ns >> 10;  // about microseconds (1.024 us): the bounds below use the same unit
    size_t b = us == 0 ? 0 : static_cast<size_t>(64 - __builtin_clzll(us));
    if (b >= kBuckets) b = kBuckets - 1;
    ++buckets[b];
    ++count;
    sum_ns += ns;
  }
  // The upper bound of bucket b, in seconds (+Inf for the last).
  static double bound_seconds(size_t b) { return static_cast<double>(uint64_t{1} << b) * 1.024e-6; }
};

// Per command (a row of the command table): INFO commandstats, /metrics.
struct CommandStats {
  uint64_t calls = 0;
  uint64_t failed = 0;  // answered with an error
  uint64_t ns = 0;      // end to end, summed
};

struct SlowEntry {
  uint64_t id = 0;
  int64_t unix_time = 0;
  uint64_t duration_us = 0;
  std::vector<std::string> args;  // as Redis: at most 32, each at most 128 bytes
  std::string client_addr;
  std::string client_name;
  std::string node;  // the node it went to (empty: answered by headroom, or several)
};

class SlowLog {
 public:
  void configure(uint64_t slower_than_us, size_t max_len) {
    slower_than_ns_ = slower_than_us * 1000;
    max_len_ = max_len;
    while (entries_.size() > max_len_) entries_.pop_back();
  }
  bool slow(uint64_t ns) const { return max_len_ != 0 && ns >= slower_than_ns_; }
  void add(SlowEntry e) {
    e.id = next_id_++;
    entries_.push_front(std::move(e));
    while (entries_.size() > max_len_) entries_.pop_back();
  }
  const std::deque<SlowEntry>& entries() const { return entries_; }  // newest first
  void reset() { entries_.clear(); }

 private:
  uint64_t slower_than_ns_ = 10'000'000;
  size_t max_len_ = 128;
  uint64_t next_id_ = 0;
  std::deque<SlowEntry> entries_;
};

}  // namespace headroom::proxy
