#include "proxy/backend_conn.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <utility>

#include "net/handle.h"
#include "proxy/client_conn.h"
#include "proxy/request.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {
constexpr uint32_t kInitialBackoffMs = 50;
constexpr uint32_t kMaxBackoffMs = 2000;
constexpr uint64_t kHealthyMs = 1000;  // a connection up this long resets the backoff
constexpr size_t kReadChunk = 64 * 1024;
}  // namespace

BackendConn::BackendConn(Server& server, balancer::NodeIndex node, const conf::BackendConfig& config, bool resp3)
    : server_(server), node_(node), config_(config), stream_(server.loop(), *this, in_),
      backoff_(kInitialBackoffMs, kMaxBackoffMs, kHealthyMs), resp3_(resp3) {
  retry_timer_ = net::new_handle(server_.loop(), this, uv_timer_init);
}

BackendConn::~BackendConn() {
  net::close_and_delete(retry_timer_);
}

void BackendConn::start() {
  stopping_ = false;
  connect();
}

std::string BackendConn::unavailable_error() const {
  return "ERR node " + config_.name + " (" + conf::to_string(config_.address) + ") is unavailable";
}

void BackendConn::connect() {
  net::StreamOptions options;
  options.keepalive_s = server_.config().tcp_keepalive_s;
  options.connect_timeout_ms = server_.config().connect_timeout_ms;
  options.read_chunk = kReadChunk;
  // The current context: certificates may have been reloaded since the last connect.
  stream_.connect(config_.address, server_.backend_tls(), options);
}

// Connected (and, over TLS, the handshake done). Before any client's command goes,
// the connection authenticates, names itself after this proxy (hr-<id>, so a
// coordinator can find and kill it when it fences this proxy) and checks the proxy's
// fence marker in database 1 (docs/directory.md); commands flow once that is answered.
void BackendConn::on_stream_open() {
  init_origin_ = server_.main_store().origin();
  const std::string name = "hr-" + init_origin_;
  const std::string marker = "hr:fence:" + init_origin_;
  init_.clear();
  if (!config_.password.empty()) {
    std::string_view auth[] = {"AUTH", config_.password};
    resp::add_command(init_, auth);
  }
  size_t hello = 0;
  if (resp3_) {  // after AUTH, before everything else
    std::string_view hello3[] = {"HELLO", "3"};
    resp::add_command(init_, hello3);
    hello = 1;
  }
  std::string_view setname[] = {"CLIENT", "SETNAME", name};
  std::string_view select1[] = {"SELECT", "1"};
  std::string_view exists[] = {"EXISTS", marker};
  std::string_view select0[] = {"SELECT", "0"};
  resp::add_command(init_, setname);
  resp::add_command(init_, select1);
  resp::add_command(init_, exists);
  resp::add_command(init_, select0);
  init_replies_ = (config_.password.empty() ? 4 : 5) + hello;
  init_fence_reply_ = 2;  // EXISTS, then SELECT 0
  if (leased_) {  // its id on the node, so that a client gone while blocked can be unblocked
    std::string_view id[] = {"CLIENT", "ID"};
    resp::add_command(init_, id);
    ++init_replies_;
    ++init_fence_reply_;
  }
  stream_.write(init_);
}

// The last reply of the init sequence: the connection is usable, or this proxy is fenced.
void BackendConn::init_done(bool fenced) {
  if (fenced) {
    spdlog::warn("node {}: this proxy (id {}) is fenced there: starting over", config_.name, init_origin_);
    server_.main_store().fenced(init_origin_);
    fail("fenced", unavailable_error(), false);
    return;
  }
  ready_ = true;
  last_failure_.clear();
  backoff_.connected(uv_now(server_.loop()));
  if (leased_) {
    if (lessee_ != nullptr) lessee_->lease_ready();
    return;
  }
  server_.backend_state_changed(node_);
  spdlog::info("node {}: connected to {}{}", config_.name, conf::to_string(config_.address),
               stream_.tls() ? " (" + stream_.tls()->describe() + ")" : std::string());
  mark_dirty();
}

void BackendConn::mark_dirty() {
  if (dirty_) return;
  dirty_ = true;
  server_.mark_dirty(this);
}

void BackendConn::sent(Request* req, uint32_t fragment, uint32_t skip) {
  inflight_.push_back({req, fragment, skip, uv_now(server_.loop())});
  ++sent_count_;
  mark_dirty();
}

void BackendConn::probe_exists(std::string_view key, std::function<void(bool)> fn) {
  std::string_view argv[] = {"EXISTS", key};
  command(argv, [fn = std::move(fn)](std::string_view reply) { fn(reply != ":0\r\n"); });
}

void BackendConn::command(std::span<const std::string_view> argv, std::function<void(std::string_view)> fn) {
  resp::add_command(out_, argv);
  inflight_.push_back({nullptr, 0, 0, uv_now(server_.loop())});
  probes_.push_back(std::move(fn));
  ++sent_count_;
  mark_dirty();
}

void BackendConn::flush() {
  dirty_ = false;
  if (ready_) stream_.write(out_);
}

void BackendConn::on_stream_data(size_t) { take_replies(); }

void BackendConn::on_stream_closed(std::string_view why) { fail(why, unavailable_error(), false); }

// Frames every complete reply in in_ and hands it to its request. false when the
// stream is broken (the connection has been failed).
bool BackendConn::take_replies() {
  for (;;) {
    int64_t len = framer_.next(in_.data(), in_.size());
    if (len == 0) break;
    if (len < 0) {
      spdlog::error("node {}: protocol error in reply: {}", config_.name, framer_.error());
      fail("protocol error in reply", unavailable_error(), true);
      return false;
    }
    std::string_view reply(in_.data(), static_cast<size_t>(len));
    if (init_replies_ > 0) {
      --init_replies_;
      if (reply[0] == '-') spdlog::error("node {}: {} while connecting", config_.name, reply.substr(1, reply.size() - 3));
      if (init_replies_ + 1 == init_fence_reply_) fenced_reply_ = reply == ":1\r\n";  // EXISTS hr:fence:<id>
      if (leased_ && init_replies_ == 0 && reply[0] == ':')  // CLIENT ID, last
        node_client_id_ = std::strtoll(reply.data() + 1, nullptr, 10);
      in_.consume(static_cast<size_t>(len));
      if (init_replies_ == 0) {
        init_done(fenced_reply_);
        if (!ready_) return false;
      }
      continue;
    } else if (inflight_.empty()) {
      spdlog::error("node {}: reply with no request waiting for it", config_.name);
      fail("unexpected reply", unavailable_error(), true);
      return false;
    } else if (inflight_.front().skip > 0) {
      --inflight_.front().skip;  // the block's earlier replies: what matters is in its last (EXEC's)
    } else {
      Pending p = inflight_.front();
      inflight_.pop_front();
      ++answered_count_;
      if (p.req != nullptr) {
        server_.on_fragment_reply(p.req, p.fragment, reply);
      } else {
        auto fn = std::move(probes_.front());
        probes_.pop_front();
        fn(reply);
      }
    }
    in_.consume(static_cast<size_t>(len));
  }
  in_.shrink_if_idle(1 << 20);
  return true;
}

void BackendConn::check_timeouts(uint64_t now_ms, uint32_t request_timeout_ms) {
  if (ready_ && request_timeout_ms != 0 && !inflight_.empty() &&
      now_ms - inflight_.front().sent_ms > request_timeout_ms) {
    spdlog::warn("node {}: no reply for {} ms: closing the connection", config_.name, request_timeout_ms);
    fail("request timed out",
         "ERR node " + config_.name + " (" + conf::to_string(config_.address) + ") timed out after " +
             std::to_string(request_timeout_ms) + " ms",
         true);
  }
}

void BackendConn::fail(std::string_view why, const std::string& error, bool reset) {
  // Each new reason once (a refused connect, a certificate that does not verify);
  // retries that fail the same way every backoff step only at debug level.
  if (leased_) spdlog::debug("node {}: leased connection: {}", config_.name, why);
  else if (ready_ || why != last_failure_) spdlog::warn("node {}: {}", config_.name, why);
  else spdlog::debug("node {}: {}", config_.name, why);
  last_failure_ = why;
  ready_ = false;
  if (!leased_) server_.backend_state_changed(node_);
  stream_.close(reset);
  out_.clear();
  in_.clear();
  framer_.reset();
  init_replies_ = 0;
  resp::Ring<Pending> failed;
  std::swap(failed, inflight_);
  answered_count_ += failed.size();  // failed: they will never reach the node now
  if (!failed.empty()) {
    resp::Buffer err;
    resp::add_error(err, error);
    failed.drain([&](Pending& p) {
      if (p.req != nullptr) {
        server_.on_fragment_reply(p.req, p.fragment, err.view());
      } else {
        auto fn = std::move(probes_.front());
        probes_.pop_front();
        fn({});  // unknown (a probe: nothing is retired on a guess)
      }
    });
  }
  if (leased_) {
    stopping_ = true;  // what was built on it is gone: its client hears so, and it is not reopened
    if (ClientConn* c = std::exchange(lessee_, nullptr)) c->lease_lost();
    return;
  }
  schedule_reconnect();
}

void BackendConn::schedule_reconnect() {
  if (stopping_ || server_.stopping()) return;
  uv_timer_start(
      retry_timer_, [](uv_timer_t* t) { static_cast<BackendConn*>(t->data)->connect(); },
      backoff_.next_delay(uv_now(server_.loop())), 0);
}

void BackendConn::shutdown() {
  stopping_ = true;
  uv_timer_stop(retry_timer_);
  ready_ = false;  // a planned close: nothing to warn about
  if (stream_.is_open() || !inflight_.empty()) fail("shutting down", unavailable_error(), false);
}

}  // namespace headroom::proxy
