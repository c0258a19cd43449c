#include "proxy/notification_relay.h"

#include <spdlog/spdlog.h>

#include "net/handle.h"
#include "proxy/client_conn.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {

constexpr std::string_view kNotificationPrefixes[] = {"__keyspace@", "__keyevent@"};
// What a node publishes about database 0, the only one headroom serves (its own marks
// live in database 1 and are not the clients' to hear).
constexpr std::string_view kDatabase0Prefixes[] = {"__keyspace@0__:", "__keyevent@0__:"};

bool database0_notification(std::string_view channel) {
  for (auto p : kDatabase0Prefixes)
    if (channel.starts_with(p)) return true;
  return false;
}

}  // namespace

bool relays_notifications(int kind, std::string_view name) {
  if (kind == 0) {
    for (auto p : kNotificationPrefixes)
      if (name.starts_with(p)) return true;
    return false;
  }
  if (kind != 1) return false;
  // A pattern's literal beginning (up to its first glob character): it can match a
  // notification channel when that beginning and a notification prefix agree.
  const std::string_view literal = name.substr(0, std::min(name.size(), name.find_first_of("*?[\\")));
  for (auto p : kNotificationPrefixes)
    if (p.starts_with(literal) || literal.starts_with(p)) return true;
  return false;
}

// One node's connection: subscribes to what the relay holds, passes messages on.
class NotificationRelay::NodeConn final : private net::Stream::Owner {
 public:
  NodeConn(NotificationRelay& relay, balancer::NodeIndex node)
      : relay_(relay), node_(node), stream_(relay.server_.loop(), *this, in_), backoff_(50, 2000, 5000) {
    retry_ = net::new_handle(relay_.server_.loop(), this, uv_timer_init);
    connect();
  }
  ~NodeConn() { net::close_and_delete(retry_); }  // the Stream closes without calling back

  // Not waited for while down (closed, backing off); connecting or open, it is.
  bool caught_up(uint64_t mark) const { return down_ || confirmed_ >= mark; }

  void send(std::span<const std::string_view> argv) {
    resp::add_command(out_, argv);
    if (stream_.established()) stream_.write(out_);
  }

 private:
  void connect() {
    const auto& cfg = relay_.server_.config();
    net::StreamOptions options;
    options.keepalive_s = cfg.tcp_keepalive_s;
    options.connect_timeout_ms = cfg.connect_timeout_ms;
    stream_.connect(cfg.nodes[node_].address, relay_.server_.backend_tls(), options);
  }

  void on_stream_open() override {
    backoff_.connected(uv_now(relay_.server_.loop()));
    resp::Buffer init;
    const auto& node = relay_.server_.config().nodes[node_];
    if (!node.password.empty()) {
      std::string_view auth[] = {"AUTH", node.password};
      resp::add_command(init, auth);
    }
    if (relay_.resp3_) {  // messages come as RESP3 pushes, as the client reads them
      std::string_view hello[] = {"HELLO", "3"};
      resp::add_command(init, hello);
    }
    // Everything relayed so far (a reconnect subscribes again); what was queued while
    // connecting is in it already.
    out_.clear();
    // Its confirmations count from here: one per name sent now, after which it has
    // confirmed everything asked so far (what is asked later follows in order).
    down_ = false;
    confirmed_ = relay_.expected_ - (relay_.names_[0].size() + relay_.names_[1].size());
    static constexpr std::string_view kCommands[] = {"SUBSCRIBE", "PSUBSCRIBE"};
    for (int kind = 0; kind < 2; ++kind) {
      if (relay_.names_[kind].empty()) continue;
      std::vector<std::string_view> argv = {kCommands[kind]};
      for (const auto& n : relay_.names_[kind]) argv.push_back(n);
      resp::add_command(init, argv);
    }
    stream_.write(init);
  }

  void on_stream_data(size_t) override {
    for (;;) {
      const int64_t len = framer_.next(in_.data(), in_.size());
      if (len == 0) break;
      if (len < 0) {
        stream_.close();
        on_stream_closed("protocol error");
        return;
      }
      relay(std::string_view(in_.data(), static_cast<size_t>(len)));
      in_.consume(static_cast<size_t>(len));
    }
  }

  // Only messages, of database 0's notification channels, to a subscription the client
  // holds confirmed. Everything else (confirmations, AUTH/HELLO replies) stays here.
  void relay(std::string_view frame) {
    if (!resp::split_array_reply(frame, parts_) || parts_.size() < 3) return;
    const std::string_view kind = resp::bulk_text(parts_[0]);
    int sub_kind;
    std::string_view name, channel;
    if (kind == "message" && parts_.size() == 3) {
      sub_kind = 0;
      name = channel = resp::bulk_text(parts_[1]);
    } else if (kind == "pmessage" && parts_.size() == 4) {
      sub_kind = 1;
      name = resp::bulk_text(parts_[1]);
      channel = resp::bulk_text(parts_[2]);
    } else {
      if ((kind == "subscribe" || kind == "psubscribe") && parts_.size() == 3) {
        ++confirmed_;
        relay_.client_.relay_progress();
      }
      return;
    }
    if (!database0_notification(channel) || !relay_.client_.subscribed_to(sub_kind, name)) return;
    relay_.client_.push(frame);
  }

  void on_stream_closed(std::string_view why) override {
    down_ = true;
    if (relay_.server_.stopping()) return;
    relay_.client_.relay_progress();  // a subscribe waiting for this node goes on without it
    spdlog::info("client {}: its keyspace-notification connection to node {} closed ({}); reconnecting",
                 relay_.client_.id(), relay_.server_.config().nodes[node_].name, why);
    in_.clear();
    framer_ = resp::ReplyFramer();
    uv_timer_start(
        retry_, [](uv_timer_t* t) { static_cast<NodeConn*>(t->data)->connect(); },
        backoff_.next_delay(uv_now(relay_.server_.loop())), 0);
  }

  NotificationRelay& relay_;
  balancer::NodeIndex node_;
  resp::Buffer in_;
  resp::Buffer out_;  // commands asked for before the connection is up (sent as its subscriptions then)
  net::Stream stream_;
  resp::ReplyFramer framer_;
  net::Backoff backoff_;
  uv_timer_t* retry_ = nullptr;
  std::vector<std::string_view> parts_;
  uint64_t confirmed_ = 0;  // subscribe confirmations received, on the relay's count (expected_)
  bool down_ = false;
};

NotificationRelay::NotificationRelay(Server& server, ClientConn& client, bool resp3)
    : server_(server), client_(client), resp3_(resp3) {
  for (balancer::NodeIndex i = 0; i < server_.config().nodes.size(); ++i)
    nodes_.push_back(std::make_unique<NodeConn>(*this, i));
}

NotificationRelay::~NotificationRelay() = default;

uint64_t NotificationRelay::on_command(int kind, bool subscribe, std::span<const std::string_view> argv) {
  if (kind != 0 && kind != 1) return 0;
  std::vector<std::string_view> out = {argv[0]};
  if (argv.size() == 1) {
    if (subscribe) return 0;
    names_[kind].clear();  // UNSUBSCRIBE / PUNSUBSCRIBE of everything
  } else {
    for (size_t i = 1; i < argv.size(); ++i) {
      if (subscribe ? !relays_notifications(kind, argv[i]) : names_[kind].erase(std::string(argv[i])) == 0) continue;
      if (subscribe) names_[kind].emplace(argv[i]);
      out.push_back(argv[i]);
    }
    if (out.size() == 1) return 0;
  }
  for (auto& n : nodes_) n->send(out);
  if (!subscribe) return 0;  // messages after an UNSUBSCRIBE's reply are dropped by the client's check
  expected_ += out.size() - 1;
  return expected_;
}

bool NotificationRelay::caught_up(uint64_t mark) const {
  for (const auto& n : nodes_)
    if (!n->caught_up(mark)) return false;
  return true;
}

}  // namespace headroom::proxy
