// A control-plane connection to one Redis server (main server or a data node's
// poller), on hiredis's async API bound to our libuv loop. It connects, authenticates,
// reconnects with exponential backoff when the connection drops, gives up on a server
// that leaves a command unanswered for kCommandTimeoutMs (a hung server), and tells
// its owner when it is up or down. Replies are hiredis redisReply objects: fine off the data path.
#pragma once

#include <hiredis/async.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace headroom::balancer {

class ControlConn {
 public:
  using ReplyFn = std::function<void(redisReply* reply)>;  // reply is nullptr when the connection failed
  using StateFn = std::function<void(bool up)>;

  ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password);
  ~ControlConn();
  ControlConn(const ControlConn&) = delete;
  ControlConn& operator=(const ControlConn&) = delete;

  // Starts connecting; `on_state` is called with true once connected (and
  // authenticated), false each time it is lost.
  void start(StateFn on_state);
  void stop();

  bool up() const { return up_; }
  const std::string& label() const { return label_; }

  // Sends a command. Returns false (and does not call `fn`) when not connected.
  bool command(const std::vector<std::string_view>& argv, ReplyFn fn);

  // For subscriber connections: `fn` is called for every message pushed afterwards.
  bool subscribe(std::string_view channel, ReplyFn fn);

 private:
  static void on_connect(const redisAsyncContext* ac, int status);
  static void on_disconnect(const redisAsyncContext* ac, int status);
  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_timer(uv_timer_t* t);
  static void on_watchdog(uv_timer_t* t);
  void connect_now();
  void lost();
  void schedule_retry();

  uv_loop_t* loop_;
  std::string label_;
  conf::Endpoint address_;
  std::string password_;
  StateFn on_state_;
  redisAsyncContext* ac_ = nullptr;
  uv_timer_t* timer_ = nullptr;     // connect timeout and reconnect backoff; owned
  uv_timer_t* watchdog_ = nullptr;  // checks for a server that stopped answering; owned
  std::deque<uint64_t> sent_ms_;    // loop time each unanswered command was sent, oldest first
  uint32_t backoff_ms_ = 100;
  bool up_ = false;
  bool connecting_ = false;  // an attempt is in progress; timer_ bounds it
  bool stopping_ = false;
  ReplyFn* subscription_ = nullptr;
};

}  // namespace headroom::balancer
