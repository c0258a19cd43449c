#include "balancer/hiredis_libuv.h"

namespace headroom::balancer {

namespace {

struct Events {
  redisAsyncContext* context;
  uv_poll_t handle;
  int events;
};

void on_poll(uv_poll_t* handle, int status, int events) {
  auto* e = static_cast<Events*>(handle->data);
  if (e->context == nullptr) return;
  if (status < 0) {
    // Let hiredis find the error itself: a read on the socket (or the connect
    // check, when not yet connected) fails, and it disconnects cleanly.
    redisAsyncHandleRead(e->context);
    return;
  }
  if (events & UV_READABLE) redisAsyncHandleRead(e->context);
  if (e->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(e->context);
}

void update(Events* e) {
  if (e->events != 0) uv_poll_start(&e->handle, e->events, on_poll);
  else uv_poll_stop(&e->handle);
}

void add_read(void* p) {
  auto* e = static_cast<Events*>(p);
  e->events |= UV_READABLE;
  update(e);
}
void del_read(void* p) {
  auto* e = static_cast<Events*>(p);
  e->events &= ~UV_READABLE;
  update(e);
}
void add_write(void* p) {
  auto* e = static_cast<Events*>(p);
  e->events |= UV_WRITABLE;
  update(e);
}
void del_write(void* p) {
  auto* e = static_cast<Events*>(p);
  e->events &= ~UV_WRITABLE;
  update(e);
}
void cleanup(void* p) {
  auto* e = static_cast<Events*>(p);
  e->context = nullptr;  // the context is being freed; the handle outlives it briefly
  uv_close(reinterpret_cast<uv_handle_t*>(&e->handle),
           [](uv_handle_t* h) { delete static_cast<Events*>(h->data); });
}

}  // namespace

bool attach_to_libuv(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return false;
  auto* e = new Events{ac, {}, 0};
  if (uv_poll_init(loop, &e->handle, ac->c.fd) != 0) {
    delete e;
    return false;
  }
  e->handle.data = e;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  ac->ev.data = e;
  return true;
}

}  // namespace headroom::balancer
