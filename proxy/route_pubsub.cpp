// Route::PubSub: the clients' channels live on the main server, one message space
// for every headroom, apart from headroom's own channels (the clients' names carry a
// prefix there: proxy/pubsub.h). A subscribing client gets a connection of its own
// to the main server (proxy/subscriber_conn.h); PUBLISH and PUBSUB go on the proxy's
// publishing connection. Keyspace notifications of the data nodes come to the client
// through its notification relay (proxy/notification_relay.h).
#include "balancer/control_conn.h"
#include "proxy/client_conn.h"
#include "proxy/pubsub.h"
#include "proxy/reply_encode.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

using resp::LocalCommand;

namespace {
std::string prefixed(std::string_view name) {
  std::string out;
  out.reserve(pubsub::kPrefix.size() + name.size());
  out.append(pubsub::kPrefix);
  out.append(name);
  return out;
}

// SUBSCRIBE family: the kind of name (0 channel, 1 pattern, 2 shard channel), or -1.
int subscription_kind(LocalCommand c) {
  switch (c) {
    case LocalCommand::Subscribe:
    case LocalCommand::Unsubscribe: return 0;
    case LocalCommand::Psubscribe:
    case LocalCommand::Punsubscribe: return 1;
    case LocalCommand::Ssubscribe:
    case LocalCommand::Sunsubscribe: return 2;
    default: return -1;
  }
}
}  // namespace

bool Router::route_pubsub(Request* req) {
  ClientConn& client = *req->client;
  const LocalCommand what = req->cmd->local;
  if (const int kind = subscription_kind(what); kind >= 0) {
    // Its confirmations come on the subscriber connection: every earlier reply first.
    if (!client.is_head(req)) {
      client.pump_at_head();
      return false;
    }
    uint32_t frames = static_cast<uint32_t>(req->argv.size() - 1);
    if (frames == 0) frames = static_cast<uint32_t>(std::max<size_t>(1, client.subscriptions(kind)));  // all of them
    client.subscriber().send(req->argv);
    const bool subscribe = what == LocalCommand::Subscribe || what == LocalCommand::Psubscribe;
    NotificationRelay* relay = client.notification_relay_if_any();
    if (relay == nullptr && subscribe)
      for (size_t i = 1; i < req->argv.size() && relay == nullptr; ++i)
        if (relays_notifications(kind, req->argv[i])) relay = &client.notification_relay();
    const uint64_t relay_mark = relay != nullptr ? relay->on_command(kind, subscribe, req->argv) : 0;
    client.await_confirmations(req, frames, relay_mark);
    ++server_.stats().commands_forwarded;
    return true;
  }
  balancer::ControlConn* main = server_.publisher();
  if (main == nullptr) {
    reply_error(req, main_unavailable("pub/sub lives there"));
    return true;
  }
  // The arguments as the main server must see them: channel names prefixed.
  std::vector<std::string> args(req->argv.begin(), req->argv.end());
  bool pairs = false, names = false;
  switch (what) {
    case LocalCommand::Publish:
      args[1] = prefixed(req->argv[1]);
      break;
    case LocalCommand::PubsubChannels:  // PUBSUB CHANNELS [pattern]
      args.resize(3);
      args[2] = prefixed(req->argv.size() > 2 ? req->argv[2] : std::string_view("*"));
      names = true;
      break;
    case LocalCommand::PubsubNumsub:  // PUBSUB NUMSUB [channel ...]
      for (size_t i = 2; i < args.size(); ++i) args[i] = prefixed(req->argv[i]);
      names = pairs = true;
      break;
    default:  // PUBSUB NUMPAT: headroom subscribes to no pattern, so the count is the clients'
      break;
  }
  std::vector<std::string_view> argv(args.begin(), args.end());
  const uint32_t f = add_fragment(req, 0);
  ++req->fragments_pending;
  // Up (checked above): sent.
  (void)main->command(argv, [this, req, f, names, pairs](redisReply* r) {
    resp::Buffer reply;
    encode_reply(r, reply);
    if (reply.empty()) resp::add_error(reply, main_unavailable("the connection was lost"));
    if (names && r != nullptr && r->type == REDIS_REPLY_ARRAY) {
      resp::Buffer shown;
      pubsub::unprefix_names(reply.view(), pairs, shown);
      on_fragment_reply(req, f, shown.view());
    } else {
      on_fragment_reply(req, f, reply.view());
    }
  });
  ++server_.stats().commands_forwarded;
  return true;
}

}  // namespace headroom::proxy
