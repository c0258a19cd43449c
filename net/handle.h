// libuv handles an object owns. They live on the heap: uv_close frees a handle only
// in its callback, a loop turn later, when the owner may be gone already.
#pragma once

#include <uv.h>

namespace headroom::net {

// A handle on `loop`, initialised by `init` (uv_timer_init, uv_idle_init, ...), whose
// callbacks find `owner` in its data.
template <typename H>
H* new_handle(uv_loop_t* loop, void* owner, int (*init)(uv_loop_t*, H*)) {
  H* h = new H;
  init(loop, h);
  h->data = owner;
  return h;
}

// Closes a handle from new_handle (or any heap handle) and frees it once closed.
template <typename H>
void close_and_delete(H* h) {
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}

}  // namespace headroom::net
