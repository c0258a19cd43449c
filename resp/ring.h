// A FIFO queue over one growable array: push at the back, pop at the front, index
// from the front. std::deque frees and allocates a block every few dozen elements as
// a steady queue moves through it; this keeps its array, so a connection's queues
// cost no allocation per request once warmed up.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace headroom::resp {

template <typename T>
class Ring {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  T& back() { return slots_[wrap(head_ + size_ - 1)]; }
  T& operator[](size_t i) { return slots_[wrap(head_ + i)]; }
  const T& operator[](size_t i) const { return slots_[wrap(head_ + i)]; }

  void push_back(T v) {
    if (size_ == slots_.size()) grow();
    slots_[wrap(head_ + size_)] = std::move(v);
    ++size_;
  }
  void pop_front() {
    slots_[head_] = T();
    head_ = wrap(head_ + 1);
    --size_;
  }
  void clear() {
    while (!empty()) pop_front();
    head_ = 0;
  }
  // Moves every element out, oldest first, leaving the ring empty.
  template <typename F>
  void drain(F&& f) {
    while (!empty()) {
      T v = std::move(front());
      pop_front();
      f(v);
    }
  }

 private:
  size_t wrap(size_t i) const { return i & (slots_.size() - 1); }
  void grow() {
    std::vector<T> bigger(slots_.empty() ? 16 : slots_.size() * 2);  // a power of two
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[wrap(head_ + i)]);
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace headroom::resp
