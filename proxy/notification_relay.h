// Keyspace and keyevent notifications (`__keyspace@0__:<key>`, `__keyevent@0__:<event>`)
// are published by each data node about its own keys; a client of headroom subscribes
// to them once and hears every node's, merged. A client whose SUBSCRIBE or PSUBSCRIBE
// names such a channel (or a pattern that can match one: `__key*@0__:*`, `*`) gets,
// besides its connection to the main server (proxy/subscriber_conn.h, which answers
// the confirmations and counts the subscriptions as always), one connection per data
// node subscribed to the same names; their messages go to the client:
//
//   - only "message"/"pmessage" frames of database 0's notification channels (the
//     nodes' confirmations are not the client's: the main server's are);
//   - only while the client's subscription to that channel or pattern is confirmed,
//     so no message comes before its SUBSCRIBE's reply, nor after its UNSUBSCRIBE's.
//
// A node connection that fails is opened again (with backoff) and subscribes again;
// what the node published meanwhile is lost, as pub/sub is at most once in Redis too.
// Which events a node publishes is its notify-keyspace-events setting (headroom adds
// the ones its directory needs, Egx, and keeps the rest: set K, E and the classes on
// the nodes). A key the mover moves is restored on its new node and deleted on its old
// one: subscribers see those events too. A node added by a reload is in the relays
// made after it (a client subscribed before hears it once it subscribes again).
#pragma once

#include <uv.h>

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "balancer/node_registry.h"
#include "net/backoff.h"
#include "net/stream.h"
#include "resp/buffer.h"
#include "resp/reply_framer.h"

namespace headroom::proxy {

class ClientConn;
class Server;

// Whether a channel (kind 0) or pattern (kind 1) can name a notification channel.
bool relays_notifications(int kind, std::string_view name);

class NotificationRelay {
 public:
  NotificationRelay(Server& server, ClientConn& client, bool resp3);
  ~NotificationRelay();
  NotificationRelay(const NotificationRelay&) = delete;
  NotificationRelay& operator=(const NotificationRelay&) = delete;

  // A SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE or PUNSUBSCRIBE the client sent (its argv as
  // the client wrote it): the names that concern notifications go to every node. For a
  // subscribe, the mark caught_up() must reach before the client hears it confirmed
  // (0: nothing to wait for).
  uint64_t on_command(int kind, bool subscribe, std::span<const std::string_view> argv);
  // Every node has confirmed the subscriptions up to `mark`, or is down (a node that
  // comes back subscribes again; what it published meanwhile is lost).
  bool caught_up(uint64_t mark) const;

 private:
  class NodeConn;

  Server& server_;
  ClientConn& client_;
  bool resp3_;
  std::unordered_set<std::string> names_[2];  // relayed channels, patterns: sent again on reconnect
  uint64_t expected_ = 0;  // subscribe confirmations each node owes, counted from its start
  std::vector<std::unique_ptr<NodeConn>> nodes_;
};

}  // namespace headroom::proxy
