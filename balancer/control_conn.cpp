#include "balancer/control_conn.h"

#include <spdlog/spdlog.h>

#include "resp/reply_writer.h"

namespace headroom::balancer {

namespace {
constexpr uint32_t kMaxBackoffMs = 2000;
constexpr uint32_t kConnectTimeoutMs = 1000;  // TCP connect and TLS handshake together
constexpr uint64_t kCommandTimeoutMs = 3000;
constexpr uint32_t kProbeIntervalMs = 100;  // PING again while the server is loading

// One uv_write and the bytes it sends; freed by its callback, so a write still in
// flight when the connection is dropped (or this object destroyed) stays valid.
struct WriteOp {
  uv_write_t req;
  resp::Buffer bytes;
};

template <typename H>
void close_and_delete(H* h) {
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<H*>(x); });
}
}  // namespace

ControlConn::ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password,
                         const std::unique_ptr<proxy::TlsContext>& tls)
    : loop_(loop), label_(std::move(label)), address_(std::move(address)), password_(std::move(password)),
      tls_context_(tls) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  watchdog_ = new uv_timer_t;
  uv_timer_init(loop_, watchdog_);
  watchdog_->data = this;
  flusher_ = new uv_idle_t;
  uv_idle_init(loop_, flusher_);
  flusher_->data = this;
}

ControlConn::~ControlConn() {
  stop();
  close_and_delete(timer_);
  close_and_delete(watchdog_);
  close_and_delete(flusher_);
}

void ControlConn::start(StateFn on_state) {
  on_state_ = std::move(on_state);
  stopping_ = false;
  uv_timer_start(watchdog_, &ControlConn::on_watchdog, 250, 250);
  connect_now();
}

void ControlConn::stop() {
  stopping_ = true;
  uv_timer_stop(timer_);
  uv_timer_stop(watchdog_);
  uv_idle_stop(flusher_);
  drop("");  // pending commands get a null reply: their owners report an error
}

void ControlConn::connect_now() {
  if (stopping_ || tcp_ != nullptr) return;
  sockaddr_storage addr{};
  int rc = address_.host.find(':') != std::string::npos
               ? uv_ip6_addr(address_.host.c_str(), address_.port, reinterpret_cast<sockaddr_in6*>(&addr))
               : uv_ip4_addr(address_.host.c_str(), address_.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) {
    spdlog::error("{}: bad address {}", label_, address_.host);
    return;
  }
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_, tcp_);
  tcp_->data = this;
  uv_tcp_nodelay(tcp_, 1);
  reader_ = redisReaderCreate();
  connect_req_ = new uv_connect_t;
  connect_req_->data = this;
  connecting_ = true;
  // Bounds the connect and, over TLS, the handshake: a server that accepts and never
  // answers is given up on.
  uv_timer_start(timer_, &ControlConn::on_timer, kConnectTimeoutMs, 0);
  rc = uv_tcp_connect(connect_req_, tcp_, reinterpret_cast<const sockaddr*>(&addr), [](uv_connect_t* req, int status) {
    auto* self = static_cast<ControlConn*>(req->data);
    delete req;
    if (self == nullptr) return;  // dropped meanwhile
    self->connect_req_ = nullptr;
    self->on_connected(status);
  });
  if (rc != 0) {
    delete connect_req_;
    connect_req_ = nullptr;
    drop(std::string("connect failed: ") + uv_strerror(rc));
  }
}

void ControlConn::on_connected(int status) {
  if (status != 0) {
    drop(std::string("connect to ") + address_.host + ":" + std::to_string(address_.port) +
         " failed: " + uv_strerror(status));
    return;
  }
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(tcp_),
      // Every read is consumed at once (fed to OpenSSL or the reader, which copy it),
      // so the scratch buffer TLS sessions share serves plaintext reads as well.
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = proxy::TlsSession::read_space(); },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t*) {
        auto* self = static_cast<ControlConn*>(s->data);
        if (self != nullptr) self->on_read(n);
      });
  if (tls_context_ == nullptr) {
    on_ready();
    return;
  }
  tls_ = std::make_unique<proxy::TlsSession>(*tls_context_, address_.host);
  if (!tls_->start_handshake()) {
    drop(tls_->error());
    return;
  }
  flush();  // the ClientHello
}

// Connected (and the TLS handshake done): authenticate, then wait until the server
// is ready (probe), then report up.
void ControlConn::on_ready() {
  connecting_ = false;
  connected_ = true;
  uv_timer_stop(timer_);
  if (!password_.empty()) {
    send({"AUTH", password_});
    pending_.push_back({[this](redisReply* r) {
                          if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
                            spdlog::error("{}: AUTH refused: {}", label_, std::string_view(r->str, r->len));
                            drop("");
                          }
                        },
                        uv_now(loop_)});
  }
  probe();
}

// PING until the server is ready. One that replays its AOF or RDB answers LOADING to
// every command: a directory load then would come back empty, and placements would
// fail, so the connection is not up until PING is answered otherwise.
void ControlConn::probe() {
  send({"PING"});
  pending_.push_back({[this](redisReply* r) {
                        if (r == nullptr || up_) return;
                        std::string_view err = r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len) : "";
                        if (err.starts_with("LOADING")) {
                          if (!loading_logged_) spdlog::info("{}: the server is loading its data; waiting", label_);
                          loading_logged_ = true;
                          uv_timer_start(timer_, &ControlConn::on_timer, kProbeIntervalMs, 0);
                          return;
                        }
                        // Anything else (NOAUTH: a password is missing from the config)
                        // would fail the commands the same way; they report it.
                        if (!err.empty()) spdlog::warn("{}: PING answered: {}", label_, err);
                        became_up();
                      },
                      uv_now(loop_)});
}

void ControlConn::became_up() {
  up_ = true;
  loading_logged_ = false;
  last_failure_.clear();
  backoff_ms_ = 100;
  spdlog::info("{}: connected to {}:{}{}", label_, address_.host, address_.port,
               tls_ ? " (" + tls_->describe() + ")" : std::string());
  if (on_state_) on_state_(true);
}

void ControlConn::on_read(ssize_t n) {
  if (n < 0) {
    drop(n == UV_EOF ? "connection closed by the server" : uv_strerror(static_cast<int>(n)));
    return;
  }
  if (n == 0) return;
  char* scratch = proxy::TlsSession::read_space().base;
  if (!tls_) {
    redisReaderFeed(reader_, scratch, static_cast<size_t>(n));
    take_replies();
    return;
  }
  bool was_established = tls_->established();
  if (!tls_->received(static_cast<size_t>(n))) {
    drop(tls_->error());
    return;
  }
  uint64_t conn = connection_;
  if (!was_established && tls_->established()) {
    on_ready();
    if (conn != connection_) return;
  }
  for (;;) {
    ssize_t got = tls_->decrypt(in_, 16 * 1024);
    if (got < 0) {
      drop(tls_->error());
      return;
    }
    if (got == 0) break;
    redisReaderFeed(reader_, in_.data(), in_.size());
    in_.clear();
    if (!take_replies()) return;
  }
  if (tls_->wants_write()) schedule_flush();
}

// Hands every complete reply to its command (or to the subscription). false when
// the connection was dropped meanwhile (a protocol error, or a callback's doing).
bool ControlConn::take_replies() {
  const uint64_t conn = connection_;
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      drop(std::string("protocol error in reply: ") + reader_->errstr);
      return false;
    }
    if (reply == nullptr) return true;
    auto* r = static_cast<redisReply*>(reply);
    if (subscription_) {
      subscription_(r);
    } else if (pending_.empty()) {
      freeReplyObject(r);
      drop("a reply with no command waiting for it");
      return false;
    } else {
      ReplyFn fn = std::move(pending_.front().fn);
      pending_.pop_front();
      fn(r);
    }
    freeReplyObject(r);
    if (conn != connection_) return false;
  }
}

void ControlConn::send(const std::vector<std::string_view>& argv) {
  resp::add_command(out_, std::span<const std::string_view>(argv.data(), argv.size()));
  schedule_flush();
}

// Everything queued until the loop next waits for I/O goes out in one write.
void ControlConn::schedule_flush() {
  uv_idle_start(flusher_, [](uv_idle_t* h) { static_cast<ControlConn*>(h->data)->flush(); });
}

bool ControlConn::command(const std::vector<std::string_view>& argv, ReplyFn fn) {
  if (!up_) return false;
  send(argv);
  pending_.push_back({std::move(fn), uv_now(loop_)});
  return true;
}

bool ControlConn::command_encoded(std::string_view resp_command, ReplyFn fn) {
  if (!up_) return false;
  out_.append(resp_command);
  schedule_flush();
  pending_.push_back({std::move(fn), uv_now(loop_)});
  return true;
}

bool ControlConn::subscribe(std::string_view channel, ReplyFn fn) {
  if (!up_ || !pending_.empty()) return false;  // replies still due would go to `fn`
  send({"SUBSCRIBE", channel});
  subscription_ = std::move(fn);
  return true;
}

void ControlConn::flush() {
  uv_idle_stop(flusher_);
  if (tcp_ == nullptr || !(connected_ || tls_)) return;  // neither connected nor in the TLS handshake
  auto* op = new WriteOp;
  if (tls_) {
    do {
      if (!tls_->seal(out_, op->bytes)) {
        delete op;
        drop(tls_->error());
        return;
      }
    } while (tls_->established() && !out_.empty());
  } else {
    op->bytes.swap(out_);
  }
  if (op->bytes.empty()) {
    delete op;
    return;
  }
  op->req.data = op;
  uv_buf_t b = uv_buf_init(op->bytes.data(), static_cast<unsigned>(op->bytes.size()));
  int rc = uv_write(&op->req, reinterpret_cast<uv_stream_t*>(tcp_), &b, 1, [](uv_write_t* req, int status) {
    auto* self = static_cast<ControlConn*>(req->handle->data);  // nullptr once dropped
    delete static_cast<WriteOp*>(req->data);
    if (status != 0 && self != nullptr) self->drop(uv_strerror(status));
  });
  if (rc != 0) {
    delete op;
    drop(uv_strerror(rc));
  }
}

void ControlConn::on_watchdog(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (!self->connected_ || self->pending_.empty()) return;
  uint64_t waited = uv_now(self->loop_) - self->pending_.front().sent_ms;
  if (waited <= kCommandTimeoutMs) return;
  self->drop("no reply for " + std::to_string(waited) + " ms");
}

void ControlConn::on_timer(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (self->connecting_) {
    // A connect or handshake that has not completed in time (a host that drops
    // packets, a stopped server's full backlog) is abandoned and retried.
    self->drop("connect to " + self->address_.host + ":" + std::to_string(self->address_.port) + " timed out");
    return;
  }
  if (self->connected_) {
    if (!self->up_) self->probe();  // still loading
    return;
  }
  self->connect_now();
}

void ControlConn::drop(const std::string& why) {
  const bool was_up = up_;
  ++connection_;
  if (!why.empty()) {
    if (was_up) {
      spdlog::warn("{}: connection lost: {}", label_, why);
    } else if (why != last_failure_) {
      // Each new reason once (a refused connect, a certificate that does not verify);
      // the retries that fail the same way every backoff step only at debug level.
      spdlog::warn("{}: {} (retrying with backoff)", label_, why);
    } else {
      spdlog::debug("{}: {}", label_, why);
    }
    last_failure_ = why;
  }
  up_ = connected_ = connecting_ = false;
  uv_timer_stop(timer_);
  if (tcp_ != nullptr) {
    tcp_->data = nullptr;
    if (connect_req_ != nullptr) connect_req_->data = nullptr;
    close_and_delete(tcp_);
    tcp_ = nullptr;
    connect_req_ = nullptr;
  }
  tls_.reset();
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  out_.clear();
  in_.clear();
  subscription_ = nullptr;
  std::deque<Pending> failed;
  failed.swap(pending_);
  for (auto& p : failed) p.fn(nullptr);
  if (was_up && on_state_ && !stopping_) on_state_(false);
  schedule_retry();
}

void ControlConn::schedule_retry() {
  if (stopping_) return;
  uv_timer_start(timer_, &ControlConn::on_timer, backoff_ms_, 0);
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

}  // namespace headroom::balancer
