#include "proxy/backend_conn.h"

#include <spdlog/spdlog.h>

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

BackendConn::BackendConn(Server& server, balancer::NodeIndex node, const conf::BackendConfig& config)
    : server_(server), node_(node), config_(config) {
  retry_timer_ = new uv_timer_t;
  uv_timer_init(server_.loop(), retry_timer_);
  retry_timer_->data = this;
}

BackendConn::~BackendConn() {
  uv_close(reinterpret_cast<uv_handle_t*>(retry_timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  if (tcp_ != nullptr) {
    tcp_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
  }
}

void BackendConn::start() { connect(); }

std::string BackendConn::unavailable_error() const {
  return "ERR node " + config_.name + " (" + config_.address.host + ":" + std::to_string(config_.address.port) +
         ") is unavailable";
}

void BackendConn::connect() {
  sockaddr_storage addr{};
  int rc = config_.address.host.find(':') != std::string::npos
               ? uv_ip6_addr(config_.address.host.c_str(), config_.address.port, reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(config_.address.host.c_str(), config_.address.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) {
    spdlog::error("node {}: bad address {}", config_.name, config_.address.host);
    return;
  }
  tcp_ = new uv_tcp_t;
  uv_tcp_init(server_.loop(), tcp_);
  tcp_->data = this;
  uv_tcp_nodelay(tcp_, 1);
  connect_req_.data = this;
  state_ = State::kConnecting;
  connect_started_ms_ = uv_now(server_.loop());
  rc = uv_tcp_connect(&connect_req_, tcp_, reinterpret_cast<const sockaddr*>(&addr), [](uv_connect_t* req, int status) {
    auto* self = static_cast<BackendConn*>(req->data);
    if (self != nullptr) self->on_connected(status);
  });
  if (rc != 0) {
    spdlog::warn("node {}: connect failed: {}", config_.name, uv_strerror(rc));
    fail("connect failed");
  }
}

void BackendConn::on_connected(int status) {
  if (state_ != State::kConnecting) return;
  if (status != 0) {
    spdlog::warn("node {}: connect to {}:{} failed: {}", config_.name, config_.address.host, config_.address.port,
                 uv_strerror(status));
    fail("connect failed");
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<BackendConn*>(h->data);
        if (self->tls_) {
          *buf = TlsSession::read_space();
          return;
        }
        buf->base = self->in_.writable(kReadChunk);
        buf->len = self->in_.writable_size();
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
        auto* self = static_cast<BackendConn*>(s->data);
        if (self != nullptr) self->on_read(n);
      });
  const TlsContext* tls_context = server_.backend_tls();  // the current one: certificates may be reloaded
  if (tls_context == nullptr) {
    ready();
    return;
  }
  // The connect timeout covers the handshake too: a server that accepts and never
  // answers (a plaintext port, a stopped process) is given up on the same way.
  state_ = State::kHandshaking;
  tls_ = std::make_unique<TlsSession>(*tls_context, config_.address.host);
  if (!tls_->start_handshake()) {
    spdlog::warn("node {}: {}", config_.name, tls_->error());
    fail("TLS handshake failed");
    return;
  }
  server_.mark_dirty(this);
}

// Connected (and, over TLS, the handshake done): commands may flow.
void BackendConn::ready() {
  state_ = State::kConnected;
  server_.backend_state_changed(node_);
  connected_ms_ = uv_now(server_.loop());
  spdlog::info("node {}: connected to {}:{}{}", config_.name, config_.address.host, config_.address.port,
               tls_ ? " (" + tls_->describe() + ")" : std::string());
  if (!config_.password.empty()) {
    // Sent ahead of anything else; its reply is swallowed (see take_replies).
    resp::Buffer auth;
    std::string_view argv[] = {"AUTH", config_.password};
    resp::add_command(auth, argv);
    auth.append(out_.view());
    out_.swap(auth);
    ++auth_replies_;
  }
  server_.mark_dirty(this);
}

void BackendConn::sent(Request* req, uint32_t fragment) {
  inflight_.push_back({req, fragment, uv_now(server_.loop())});
  server_.mark_dirty(this);
}

void BackendConn::flush() {
  if (writing_) return;
  if (tls_) {
    if (state_ != State::kConnected && state_ != State::kHandshaking) return;
    // During the handshake only its own bytes go out; commands wait in out_.
    resp::Buffer none;
    if (!tls_->seal(state_ == State::kConnected ? out_ : none, writing_buf_)) {
      spdlog::warn("node {}: {}", config_.name, tls_->error());
      fail("TLS error");
      return;
    }
    if (writing_buf_.empty()) return;
  } else {
    if (state_ != State::kConnected || out_.empty()) return;
    writing_buf_.swap(out_);
    out_.clear();
  }
  uv_buf_t b = uv_buf_init(writing_buf_.data(), static_cast<unsigned>(writing_buf_.size()));
  write_req_.data = this;
  writing_ = true;
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(tcp_), &b, 1, [](uv_write_t* req, int status) {
    auto* self = static_cast<BackendConn*>(req->data);
    if (self != nullptr) self->on_written(status);
  });
  if (rc != 0) {
    writing_ = false;
    fail(uv_strerror(rc));
  }
}

void BackendConn::on_written(int status) {
  writing_ = false;
  writing_buf_.clear();
  writing_buf_.shrink_if_idle(1 << 20);
  if (status != 0) {
    if (status != UV_ECANCELED) fail(uv_strerror(status));
    return;
  }
  if (!out_.empty() || (tls_ && tls_->wants_write())) server_.mark_dirty(this);
}

void BackendConn::on_read(ssize_t n) {
  if (n < 0) {
    fail(n == UV_EOF ? "connection closed by node" : uv_strerror(static_cast<int>(n)));
    return;
  }
  if (n == 0) return;
  if (tls_) {
    on_tls_read(static_cast<size_t>(n));
    return;
  }
  in_.commit(static_cast<size_t>(n));
  take_replies();
}

void BackendConn::on_tls_read(size_t n) {
  bool was_established = tls_->established();
  bool ok = tls_->received(n);
  if (ok && !was_established && tls_->established()) ready();
  while (ok) {
    ssize_t got = tls_->decrypt(in_, kReadChunk);
    if (got <= 0) {
      ok = got == 0;
      break;
    }
    if (!take_replies() || !tls_) return;  // the connection has failed meanwhile
  }
  if (!ok) {
    std::string why = tls_->closed() ? "connection closed by node" : tls_->error();
    if (state_ != State::kConnected) spdlog::warn("node {}: {}", config_.name, why);  // fail() logs the others
    fail(why.c_str());
    return;
  }
  if (tls_->wants_write()) server_.mark_dirty(this);
}

// Frames every complete reply in in_ and hands it to its request. false when the
// stream is broken (the connection has been failed).
bool BackendConn::take_replies() {
  for (;;) {
    int64_t len = framer_.next(in_.data(), in_.size());
    if (len == 0) break;
    if (len < 0) {
      spdlog::error("node {}: protocol error in reply: {}", config_.name, framer_.error());
      fail("protocol error in reply");
      return false;
    }
    std::string_view reply(in_.data(), static_cast<size_t>(len));
    if (auth_replies_ > 0) {
      --auth_replies_;
      if (reply[0] == '-') spdlog::error("node {}: AUTH refused: {}", config_.name, reply.substr(1, reply.size() - 3));
    } else if (inflight_.empty()) {
      spdlog::error("node {}: reply with no request waiting for it", config_.name);
      fail("unexpected reply");
      return false;
    } else {
      Pending p = inflight_.front();
      inflight_.pop_front();
      server_.on_fragment_reply(p.req, p.fragment, reply);
    }
    in_.consume(static_cast<size_t>(len));
  }
  in_.shrink_if_idle(1 << 20);
  return true;
}

void BackendConn::check_timeouts(uint64_t now_ms, uint32_t connect_timeout_ms, uint32_t request_timeout_ms) {
  if ((state_ == State::kConnecting || state_ == State::kHandshaking) && connect_timeout_ms != 0 &&
      now_ms - connect_started_ms_ > connect_timeout_ms) {
    spdlog::warn("node {}: connect timed out after {} ms", config_.name, connect_timeout_ms);
    fail("connect timed out");
    return;
  }
  if (state_ == State::kConnected && request_timeout_ms != 0 && !inflight_.empty() &&
      now_ms - inflight_.front().sent_ms > request_timeout_ms) {
    spdlog::warn("node {}: no reply for {} ms: closing the connection", config_.name, request_timeout_ms);
    fail("request timed out", "ERR node " + config_.name + " (" + config_.address.host + ":" +
                                  std::to_string(config_.address.port) + ") timed out after " +
                                  std::to_string(request_timeout_ms) + " ms");
  }
}

void BackendConn::fail(const char* why, const std::string& error) {
  bool was_connected = state_ == State::kConnected;
  if (was_connected) spdlog::warn("node {}: {}", config_.name, why);
  state_ = State::kIdle;
  server_.backend_state_changed(node_);
  if (tcp_ != nullptr) {
    tcp_->data = nullptr;
    connect_req_.data = nullptr;
    write_req_.data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) { delete reinterpret_cast<uv_tcp_t*>(h); });
    tcp_ = nullptr;
  }
  writing_ = false;
  writing_buf_ = resp::Buffer();
  out_.clear();
  in_.clear();
  framer_.reset();
  tls_.reset();
  auth_replies_ = 0;
  std::deque<Pending> failed;
  failed.swap(inflight_);
  resp::Buffer err;
  resp::add_error(err, error);
  for (auto& p : failed) server_.on_fragment_reply(p.req, p.fragment, err.view());
  schedule_reconnect();
}

void BackendConn::schedule_reconnect() {
  // The backoff starts over only after a connection that lasted: a node that accepts
  // and then drops every connection (a client certificate it refuses, its maxclients)
  // is retried at the backoff's pace, not every kInitialBackoffMs.
  if (connected_ms_ != 0 && uv_now(server_.loop()) - connected_ms_ >= kHealthyMs) backoff_ms_ = kInitialBackoffMs;
  connected_ms_ = 0;
  if (server_.stopping()) return;
  uv_timer_start(
      retry_timer_, [](uv_timer_t* t) { static_cast<BackendConn*>(t->data)->connect(); }, backoff_ms_, 0);
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

void BackendConn::shutdown() {
  uv_timer_stop(retry_timer_);
  if (state_ != State::kIdle) fail("shutting down");
  uv_timer_stop(retry_timer_);
}

}  // namespace headroom::proxy
