#include "balancer/control_conn.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "net/handle.h"
#include "resp/reply_writer.h"

namespace headroom::balancer {

namespace {
constexpr uint32_t kInitialBackoffMs = 100;
constexpr uint32_t kMaxBackoffMs = 2000;
constexpr uint64_t kHealthyMs = 1000;       // a connection up this long resets the backoff
constexpr uint32_t kProbeIntervalMs = 100;  // PING again while the server is loading
// With request_ms 0 ("no timeout") data requests may wait for ever, but a placement
// or a directory load must not: the control plane still gives up after this.
constexpr uint32_t kFallbackCommandMs = 5000;

bool is_pong(const redisReply* r) {
  // In subscribed mode (RESP2) PING is answered ["pong", ""].
  return r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
         std::string_view(r->element[0]->str, r->element[0]->len) == "pong";
}
}  // namespace

ControlTimeouts ControlTimeouts::from(const conf::Config& c) {
  ControlTimeouts t;
  t.connect_ms = c.connect_timeout_ms != 0 ? c.connect_timeout_ms : kFallbackCommandMs;
  t.command_ms = c.request_timeout_ms != 0 ? c.request_timeout_ms : kFallbackCommandMs;
  t.keepalive_s = c.tcp_keepalive_s;
  t.heartbeat_ms = std::clamp<uint32_t>(t.command_ms, 100, 1000);
  return t;
}

ControlConn::ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password,
                         const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts)
    : loop_(loop), label_(std::move(label)), address_(std::move(address)), password_(std::move(password)),
      tls_context_(tls), timeouts_(timeouts), stream_(loop, *this, in_),
      backoff_(kInitialBackoffMs, kMaxBackoffMs, kHealthyMs) {
  timer_ = net::new_handle(loop_, this, uv_timer_init);
  watchdog_ = net::new_handle(loop_, this, uv_timer_init);
  flusher_ = net::new_handle(loop_, this, uv_idle_init);
}

ControlConn::~ControlConn() {
  stop();
  net::close_and_delete(timer_);
  net::close_and_delete(watchdog_);
  net::close_and_delete(flusher_);
}

void ControlConn::start(StateFn on_state) {
  on_state_ = std::move(on_state);
  stopping_ = false;
  uint32_t period = std::clamp<uint32_t>(std::min(timeouts_.command_ms, timeouts_.heartbeat_ms) / 4, 10, 250);
  uv_timer_start(watchdog_, &ControlConn::on_watchdog, period, period);
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
  if (stopping_ || connecting_ || stream_.is_open()) return;
  connecting_ = true;
  reader_ = arena_.make_reader();
  net::StreamOptions options;
  options.keepalive_s = timeouts_.keepalive_s;
  options.connect_timeout_ms = timeouts_.connect_ms;
  stream_.connect(address_, tls_context_.get(), options);
}

// Connected (and the TLS handshake done): authenticate, then wait until the server
// is ready (probe), then report up.
void ControlConn::on_stream_open() {
  connecting_ = false;
  last_read_ms_ = uv_now(loop_);
  if (!password_.empty()) {
    send({"AUTH", password_}, [this](redisReply* r) {
      if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
        spdlog::error("{}: AUTH refused: {}", label_, std::string_view(r->str, r->len));
        drop("");
      }
    });
  }
  if (!client_name_.empty()) {
    send({"CLIENT", "SETNAME", client_name_}, [this](redisReply* r) {
      if (r != nullptr && r->type == REDIS_REPLY_ERROR)
        spdlog::debug("{}: CLIENT SETNAME refused: {}", label_, std::string_view(r->str, r->len));
    });
  }
  probe();
}

// PING until the server is ready. One that replays its AOF or RDB answers LOADING to
// every command: a directory load then would come back empty, and placements would
// fail, so the connection is not up until PING is answered otherwise.
void ControlConn::probe() {
  send({"PING"}, [this](redisReply* r) {
    if (r == nullptr || up_) return;
    std::string_view err = r->type == REDIS_REPLY_ERROR ? std::string_view(r->str, r->len) : "";
    if (err.starts_with("LOADING")) {
      if (!loading_logged_) spdlog::info("{}: the server is loading its data; waiting", label_);
      loading_logged_ = true;
      uv_timer_start(timer_, &ControlConn::on_timer, kProbeIntervalMs, 0);
      return;
    }
    // Anything else (NOAUTH: a password is missing from the config) would fail the
    // commands the same way; they report it.
    if (!err.empty()) spdlog::warn("{}: PING answered: {}", label_, err);
    became_up();
  });
}

void ControlConn::became_up() {
  up_ = true;
  loading_logged_ = false;
  last_failure_.clear();
  backoff_.connected(uv_now(loop_));
  spdlog::info("{}: connected to {}{}", label_, conf::to_string(address_),
               stream_.tls() ? " (" + stream_.tls()->describe() + ")" : std::string());
  if (on_state_) on_state_(true);
}

void ControlConn::on_stream_data(size_t) {
  last_read_ms_ = uv_now(loop_);
  redisReaderFeed(reader_, in_.data(), in_.size());
  in_.clear();
  take_replies();
}

void ControlConn::on_stream_closed(std::string_view why) { drop(std::string(why)); }

// Hands every complete reply to its command (or to the subscription). false when
// the connection was dropped meanwhile (a protocol error, or a callback's doing).
bool ControlConn::take_replies() {
  redisReader* reader = reader_;
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
      drop(std::string("protocol error in reply: ") + reader->errstr);
      return false;
    }
    if (reply == nullptr) return true;
    auto* r = static_cast<redisReply*>(reply);
    if (subscription_ && !(is_pong(r) && !pending_.empty())) {
      subscription_(r);
    } else if (pending_.empty()) {
      arena_.release();
      drop("a reply with no command waiting for it");
      return false;
    } else {
      ReplyFn fn = std::move(pending_.front().fn);
      pending_.pop_front();
      fn(r);
    }
    arena_.release();
    if (reader != reader_) return false;  // dropped meanwhile: the reader is gone
  }
}

void ControlConn::send(std::span<const std::string_view> argv, ReplyFn fn) {
  resp::add_command(out_, argv);
  pending_.push_back({std::move(fn), uv_now(loop_)});
  schedule_flush();
}

// Everything queued until the loop next waits for I/O goes out in one write.
void ControlConn::schedule_flush() {
  uv_idle_start(flusher_, [](uv_idle_t* h) { static_cast<ControlConn*>(h->data)->flush(); });
}

bool ControlConn::command(std::span<const std::string_view> argv, ReplyFn fn) {
  if (!up_) return false;
  send(argv, std::move(fn));
  return true;
}

bool ControlConn::command_encoded(std::string_view resp_command, ReplyFn fn) {
  if (!up_) return false;
  out_.append(resp_command);
  pending_.push_back({std::move(fn), uv_now(loop_)});
  schedule_flush();
  return true;
}

bool ControlConn::subscribe(const std::vector<std::string_view>& channels, ReplyFn fn) {
  if (!up_ || !pending_.empty()) return false;  // replies still due would go to `fn`
  std::vector<std::string_view> argv{"SUBSCRIBE"};
  argv.insert(argv.end(), channels.begin(), channels.end());
  resp::add_command(out_, std::span<const std::string_view>(argv.data(), argv.size()));
  subscription_ = std::move(fn);
  schedule_flush();
  return true;
}

void ControlConn::flush() {
  uv_idle_stop(flusher_);
  stream_.write(out_);  // before the stream is established, `out_` waits
}

void ControlConn::on_watchdog(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (!self->stream_.established() || self->connecting_) return;
  uint64_t now = uv_now(self->loop_);
  if (!self->pending_.empty()) {
    uint64_t waited = now - self->pending_.front().sent_ms;
    if (waited > self->timeouts_.command_ms) self->drop("no reply for " + std::to_string(waited) + " ms");
    return;
  }
  // Idle: a PING proves the connection still carries bytes both ways. A subscriber
  // connection gets its reply after every message published before it, so its
  // answer also says nothing was lost in between.
  if (self->up_ && now - self->last_read_ms_ >= self->timeouts_.heartbeat_ms)
    self->send({"PING"}, [](redisReply*) {});
}

void ControlConn::on_timer(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (self->stream_.established()) {
    if (!self->up_) self->probe();  // still loading
    return;
  }
  self->connect_now();
}

void ControlConn::drop(const std::string& why) {
  const bool was_up = up_;
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
  up_ = connecting_ = false;
  uv_timer_stop(timer_);
  uv_idle_stop(flusher_);
  stream_.close();
  if (reader_ != nullptr) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  out_.clear();
  in_.clear();
  subscription_ = nullptr;
  resp::Ring<Pending> failed;
  std::swap(failed, pending_);
  failed.drain([](Pending& p) { p.fn(nullptr); });
  if (was_up && on_state_ && !stopping_) on_state_(false);
  schedule_retry();
}

void ControlConn::schedule_retry() {
  if (stopping_) return;
  uv_timer_start(timer_, &ControlConn::on_timer, backoff_.next_delay(uv_now(loop_)), 0);
}

}  // namespace headroom::balancer
