// A control connection's parsed reply (hiredis redisReply) as RESP bytes again, for
// the few commands headroom sends there on a client's behalf (SCRIPT KILL, PUBLISH,
// PUBSUB ...): RESP2's types, which is what those connections speak.
#pragma once

#include <hiredis/hiredis.h>

#include "resp/buffer.h"

namespace headroom::proxy {

// Appends `r` (nothing when it is nullptr: the connection failed).
void encode_reply(const redisReply* r, resp::Buffer& out);

}  // namespace headroom::proxy
