// The clients' pub/sub namespace on the main server (proxy/subscriber_conn.h): a
// client's channel or pattern X is "c:" + X there. What goes up is prefixed, what
// comes back has the prefix taken off.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "resp/buffer.h"

namespace headroom::proxy::pubsub {

inline constexpr std::string_view kPrefix = "c:";

// argv with every argument from `first` on prefixed, encoded as one command.
void encode_prefixed(resp::Buffer& out, std::span<const std::string_view> argv, size_t first);

// A frame from the main server (a (un)subscribe confirmation, a message, a pmessage,
// an smessage; RESP2 array or RESP3 push) as the client must see it: its channel and
// pattern without the prefix. false when it is not such a frame (then `out` is unchanged).
bool unprefix_frame(std::string_view frame, resp::Buffer& out);

// What a (client-side) frame confirms: SUBSCRIBE-family confirmations name the kind
// (0 channel, 1 pattern, 2 shard channel), whether it subscribed, and the name (empty
// for the nil of an UNSUBSCRIBE with nothing subscribed). false for messages.
struct Confirmation {
  int kind = 0;
  bool subscribed = false;
  std::string name;
};
bool confirmation_of(std::string_view frame, Confirmation& c);

// A PUBSUB CHANNELS / SHARDCHANNELS reply (an array of names), NUMSUB / SHARDNUMSUB
// (name, count, ...): the names without the prefix. Anything else is copied as is.
void unprefix_names(std::string_view reply, bool pairs, resp::Buffer& out);

}  // namespace headroom::proxy::pubsub
