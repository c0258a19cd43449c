// A growable byte buffer with a read and a write position: the unit of I/O on every
// connection. libuv reads straight into its free tail (writable/commit), parsers read
// from its head (data/consume). Memory is reused: consume() only moves the read
// position, and compact() slides the unread bytes to the front when asked.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace headroom::resp {

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;

  const char* data() const { return buf_.get() + rpos_; }
  char* data() { return buf_.get() + rpos_; }
  size_t size() const { return wpos_ - rpos_; }
  bool empty() const { return wpos_ == rpos_; }
  size_t capacity() const { return cap_; }
  std::string_view view() const { return {data(), size()}; }

  // Free space at the tail, at least `min` bytes (grows or compacts as needed).
  char* writable(size_t min) {
    reserve_tail(min);
    return buf_.get() + wpos_;
  }
  size_t writable_size() const { return cap_ - wpos_; }
  void commit(size_t n) { wpos_ += n; }

  void append(const char* p, size_t n) {
    if (n == 0) return;  // p may be null (an empty view)
    reserve_tail(n);
    std::memcpy(buf_.get() + wpos_, p, n);
    wpos_ += n;
  }
  void append(std::string_view s) { append(s.data(), s.size()); }
  void push_back(char c) {
    reserve_tail(1);
    buf_[wpos_++] = c;
  }

  void consume(size_t n) {
    rpos_ += n;
    if (rpos_ == wpos_) rpos_ = wpos_ = 0;
  }
  void clear() { rpos_ = wpos_ = 0; }

  // Slides unread bytes to the front. Invalidates pointers into the buffer.
  void compact() {
    if (rpos_ == 0) return;
    std::memmove(buf_.get(), buf_.get() + rpos_, wpos_ - rpos_);
    wpos_ -= rpos_;
    rpos_ = 0;
  }

  // Gives memory back after a burst (a large value) once the buffer is empty.
  void shrink_if_idle(size_t keep) {
    if (empty() && cap_ > keep) {
      buf_.reset();
      cap_ = 0;
    }
  }

  void swap(Buffer& o) noexcept {
    buf_.swap(o.buf_);
    std::swap(cap_, o.cap_);
    std::swap(rpos_, o.rpos_);
    std::swap(wpos_, o.wpos_);
  }

 private:
  void reserve_tail(size_t n) {
    if (cap_ - wpos_ >= n) return;
    if (rpos_ > 0 && cap_ - (wpos_ - rpos_) >= n && rpos_ >= (wpos_ - rpos_)) {
      compact();  // cheap: less to move than what is already consumed
      return;
    }
    // Grows by doubling; a first allocation is just big enough (rounded to 64 bytes),
    // so the many small buffers of waiting requests stay small.
    size_t need = wpos_ - rpos_ + n;
    size_t cap = cap_ ? cap_ * 2 : ((need + 63) & ~size_t{63});
    while (cap < need) cap *= 2;
    std::unique_ptr<char[]> nb(new char[cap]);
    if (wpos_ > rpos_) std::memcpy(nb.get(), buf_.get() + rpos_, wpos_ - rpos_);
    wpos_ -= rpos_;
    rpos_ = 0;
    buf_ = std::move(nb);
    cap_ = cap;
  }

  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t rpos_ = 0;
  size_t wpos_ = 0;
};

}  // namespace headroom::resp
