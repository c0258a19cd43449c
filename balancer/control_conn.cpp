#include "balancer/control_conn.h"

#include "balancer/hiredis_libuv.h"

#include <spdlog/spdlog.h>

namespace headroom::balancer {

namespace {
constexpr uint32_t kMaxBackoffMs = 2000;
constexpr uint32_t kConnectTimeoutMs = 1000;
constexpr uint64_t kCommandTimeoutMs = 3000;
}

ControlConn::ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password)
    : loop_(loop), label_(std::move(label)), address_(std::move(address)), password_(std::move(password)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  watchdog_ = new uv_timer_t;
  uv_timer_init(loop_, watchdog_);
  watchdog_->data = this;
}

ControlConn::~ControlConn() {
  stop();
  for (uv_timer_t* t : {timer_, watchdog_})
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

void ControlConn::start(StateFn on_state) {
  on_state_ = std::move(on_state);
  uv_timer_start(watchdog_, &ControlConn::on_watchdog, 250, 250);
  connect_now();
}

void ControlConn::on_watchdog(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (self->ac_ == nullptr || self->sent_ms_.empty()) return;
  uint64_t waited = uv_now(self->loop_) - self->sent_ms_.front();
  if (waited <= kCommandTimeoutMs) return;
  spdlog::warn("{}: no reply for {} ms: dropping the connection", self->label_, waited);
  // Pending commands get a null reply (their owners report an error); then reconnect.
  redisAsyncContext* ac = self->ac_;
  self->ac_ = nullptr;
  ac->data = nullptr;
  redisAsyncFree(ac);
  self->lost();
}

void ControlConn::stop() {
  stopping_ = true;
  connecting_ = false;
  uv_timer_stop(timer_);
  uv_timer_stop(watchdog_);
  if (ac_ != nullptr) {
    ac_->data = nullptr;  // callbacks that still arrive must not reach us
    redisAsyncFree(ac_);
    ac_ = nullptr;
  }
  delete subscription_;
  subscription_ = nullptr;
  up_ = false;
}

void ControlConn::connect_now() {
  if (stopping_) return;
  ac_ = redisAsyncConnect(address_.host.c_str(), address_.port);
  if (ac_ == nullptr || ac_->err) {
    spdlog::debug("{}: connect to {}:{} failed: {}", label_, address_.host, address_.port,
                  ac_ ? ac_->errstr : "out of memory");
    if (ac_ != nullptr) redisAsyncFree(ac_);
    ac_ = nullptr;
    schedule_retry();
    return;
  }
  ac_->data = this;
  if (!attach_to_libuv(ac_, loop_)) {
    redisAsyncFree(ac_);
    ac_ = nullptr;
    schedule_retry();
    return;
  }
  redisAsyncSetConnectCallback(ac_, &ControlConn::on_connect);
  redisAsyncSetDisconnectCallback(ac_, &ControlConn::on_disconnect);
  connecting_ = true;
  uv_timer_start(timer_, &ControlConn::on_timer, kConnectTimeoutMs, 0);
}

void ControlConn::on_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<ControlConn*>(ac->data);
  if (self == nullptr) return;
  self->connecting_ = false;
  uv_timer_stop(self->timer_);
  if (status != REDIS_OK) {
    spdlog::debug("{}: connect failed: {}", self->label_, ac->errstr);
    self->ac_ = nullptr;  // hiredis frees the context after this callback
    self->schedule_retry();
    return;
  }
  if (self->password_.empty()) {
    self->backoff_ms_ = 100;
    self->up_ = true;
    spdlog::info("{}: connected to {}:{}", self->label_, self->address_.host, self->address_.port);
    if (self->on_state_) self->on_state_(true);
    return;
  }
  std::vector<std::string_view> auth{"AUTH", self->password_};
  self->up_ = true;  // so that command() sends; the AUTH reply decides
  self->command(auth, [self](redisReply* r) {
    if (r == nullptr) return;
    if (r->type == REDIS_REPLY_ERROR) {
      spdlog::error("{}: AUTH refused: {}", self->label_, std::string_view(r->str, r->len));
      self->up_ = false;
      redisAsyncDisconnect(self->ac_);
      return;
    }
    self->backoff_ms_ = 100;
    if (self->on_state_) self->on_state_(true);
  });
}

void ControlConn::on_disconnect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<ControlConn*>(ac->data);
  if (self == nullptr) return;
  if (status != REDIS_OK) spdlog::warn("{}: connection lost: {}", self->label_, ac->errstr);
  self->ac_ = nullptr;  // hiredis frees the context after this callback
  self->lost();
}

void ControlConn::lost() {
  bool was_up = up_;
  up_ = false;
  sent_ms_.clear();
  delete subscription_;
  subscription_ = nullptr;
  if (was_up && on_state_) on_state_(false);
  schedule_retry();
}

void ControlConn::schedule_retry() {
  if (stopping_) return;
  uv_timer_start(timer_, &ControlConn::on_timer, backoff_ms_, 0);
  backoff_ms_ = std::min(backoff_ms_ * 2, kMaxBackoffMs);
}

void ControlConn::on_timer(uv_timer_t* t) {
  auto* self = static_cast<ControlConn*>(t->data);
  if (self->connecting_) {
    // A connect that has not completed in time (a host that drops packets, a stopped
    // server's full backlog) is abandoned and retried.
    spdlog::debug("{}: connect to {}:{} timed out", self->label_, self->address_.host, self->address_.port);
    self->connecting_ = false;
    if (self->ac_ != nullptr) {
      self->ac_->data = nullptr;
      redisAsyncFree(self->ac_);
      self->ac_ = nullptr;
    }
    self->schedule_retry();
    return;
  }
  self->connect_now();
}

void ControlConn::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  if (auto* self = static_cast<ControlConn*>(ac->data); self != nullptr && !self->sent_ms_.empty())
    self->sent_ms_.pop_front();
  auto* fn = static_cast<ReplyFn*>(privdata);
  (*fn)(static_cast<redisReply*>(reply));
  delete fn;
}

bool ControlConn::command(const std::vector<std::string_view>& argv, ReplyFn fn) {
  if (!up_ || ac_ == nullptr) return false;
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (auto a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* holder = new ReplyFn(std::move(fn));
  if (redisAsyncCommandArgv(ac_, &ControlConn::on_reply, holder, static_cast<int>(argv.size()), ptrs.data(),
                            lens.data()) != REDIS_OK) {
    delete holder;
    return false;
  }
  sent_ms_.push_back(uv_now(loop_));
  return true;
}

bool ControlConn::subscribe(std::string_view channel, ReplyFn fn) {
  if (!up_ || ac_ == nullptr) return false;
  delete subscription_;
  subscription_ = new ReplyFn(std::move(fn));
  std::string ch(channel);
  // hiredis keeps a subscription callback for every message; it is not freed per reply.
  return redisAsyncCommand(
             ac_,
             [](redisAsyncContext* ac, void* reply, void*) {
               auto* self = static_cast<ControlConn*>(ac->data);
               if (self == nullptr || self->subscription_ == nullptr) return;
               (*self->subscription_)(static_cast<redisReply*>(reply));
             },
             nullptr, "SUBSCRIBE %b", ch.data(), ch.size()) == REDIS_OK;
}

}  // namespace headroom::balancer
