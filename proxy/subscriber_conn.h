// A subscribed client's own connection to the main server, where the clients'
// channels live (one message space for every headroom): SUBSCRIBE, PSUBSCRIBE,
// SSUBSCRIBE and their UNSUBSCRIBEs go there, and every frame that comes back (the
// confirmations, then the messages) goes to the client.
//
// The clients' channels are kept out of headroom's own (headroom:dir:events, whose
// messages change every proxy's directory): each client channel and pattern is
// "c:" + its name on the main server, so a client's PUBLISH cannot reach a channel of
// headroom's, nor a PSUBSCRIBE * read one. The prefix is put on as commands go and
// taken off each frame as it comes back (proxy/pubsub.h).
//
// If the connection fails, the client is closed: its subscriptions are gone, and a
// client library reconnects and subscribes again, as after a server restart.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "net/stream.h"
#include "resp/buffer.h"
#include "resp/reply_framer.h"

namespace headroom::proxy {

class ClientConn;
class Server;

class SubscriberConn final : private net::Stream::Owner {
 public:
  SubscriberConn(Server& server, ClientConn& client, bool resp3);
  ~SubscriberConn();
  SubscriberConn(const SubscriberConn&) = delete;
  SubscriberConn& operator=(const SubscriberConn&) = delete;

  // A (un)subscribe command, its channel or pattern arguments prefixed; sent once
  // connected, in order.
  void send(std::span<const std::string_view> argv);
  void flush();

 private:
  void on_stream_open() override;
  void on_stream_data(size_t n) override;
  void on_stream_closed(std::string_view why) override;

  Server& server_;
  ClientConn& client_;
  bool resp3_;
  resp::Buffer in_;
  resp::Buffer out_;    // commands not yet written (before the connection is up, all of them)
  resp::Buffer init_;
  resp::Buffer frame_;  // a frame as the client sees it
  net::Stream stream_;
  resp::ReplyFramer framer_;
  size_t init_replies_ = 0;
  bool ready_ = false;
  bool dirty_ = false;
};

}  // namespace headroom::proxy
