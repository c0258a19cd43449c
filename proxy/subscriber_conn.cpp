#include "proxy/subscriber_conn.h"

#include <spdlog/spdlog.h>

#include "proxy/client_conn.h"
#include "proxy/pubsub.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

SubscriberConn::SubscriberConn(Server& server, ClientConn& client, bool resp3)
    : server_(server), client_(client), resp3_(resp3), stream_(server.loop(), *this, in_) {
  net::StreamOptions options;
  options.keepalive_s = server_.config().tcp_keepalive_s;
  options.connect_timeout_ms = server_.config().connect_timeout_ms;
  stream_.connect(server_.config().main.address, server_.backend_tls(), options);
}

SubscriberConn::~SubscriberConn() = default;  // the Stream closes without calling back

void SubscriberConn::send(std::span<const std::string_view> argv) {
  pubsub::encode_prefixed(out_, argv, 1);
  flush();
}

void SubscriberConn::flush() {
  if (ready_ && !out_.empty()) stream_.write(out_);
}

void SubscriberConn::on_stream_open() {
  const auto& main = server_.config().main;
  init_.clear();
  init_replies_ = 0;
  if (!main.password.empty()) {
    std::string_view auth[] = {"AUTH", main.password};
    resp::add_command(init_, auth);
    ++init_replies_;
  }
  if (resp3_) {  // messages then come as RESP3 pushes, as the client expects
    std::string_view hello[] = {"HELLO", "3"};
    resp::add_command(init_, hello);
    ++init_replies_;
  }
  ready_ = true;
  init_.append(out_.view());  // the commands asked for meanwhile follow, in one write
  out_.clear();
  stream_.write(init_);
}

void SubscriberConn::on_stream_data(size_t) {
  resp::Buffer& frame = frame_;  // reused: no allocation per message
  for (;;) {
    int64_t len = framer_.next(in_.data(), in_.size());
    if (len == 0) break;
    if (len < 0) {
      on_stream_closed("protocol error from the main server");
      return;
    }
    std::string_view reply(in_.data(), static_cast<size_t>(len));
    if (init_replies_ > 0) {
      --init_replies_;
      if (reply[0] == '-') spdlog::warn("pub/sub connection to the main server: {}", reply.substr(1, reply.size() - 3));
    } else {
      frame.clear();
      if (pubsub::unprefix_frame(reply, frame)) client_.push(frame.view());
      else client_.push(reply);  // an error (a command the main server refused): the client's to see
    }
    in_.consume(static_cast<size_t>(len));
  }
}

void SubscriberConn::on_stream_closed(std::string_view why) {
  spdlog::info("client {}: its pub/sub connection to the main server closed ({}): closing the client", client_.id(),
               why);
  ready_ = false;
  client_.close();  // its subscriptions are gone: the client library subscribes again
}

}  // namespace headroom::proxy
