// Binds a hiredis async context to a libuv loop, as hiredis's own adapter
// (hiredis/adapters/libuv.h) does, with one difference that matters: when libuv
// reports a poll error (a refused connect, a reset connection), hiredis is told, by
// letting it read, so it sees the error, fails the pending callbacks and disconnects.
// hiredis 0.14's adapter drops such errors, and the context then waits forever.
#pragma once

#include <hiredis/async.h>
#include <uv.h>

namespace headroom::balancer {

// Attaches `ac` to `loop`. Returns false on failure (the context is then unusable).
bool attach_to_libuv(redisAsyncContext* ac, uv_loop_t* loop);

}  // namespace headroom::balancer
