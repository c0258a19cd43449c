// A control-plane connection to one Redis server (main server or a data node's
// poller): a libuv TCP stream, TLS when backend_tls is on, commands encoded with
// resp/reply_writer.h and replies parsed by hiredis's redisReader into redisReply
// objects (fine off the data path). It connects, authenticates, reconnects with
// exponential backoff when the connection drops, gives up on a server that leaves a
// command unanswered for kCommandTimeoutMs (a hung server), and tells its owner when
// it is up or down.
//
// Why not hiredis's async API: the hiredis Debian ships (0.14) has no TLS, and its
// libuv adapter drops poll errors (a refused connect was never reported).
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"
#include "proxy/tls.h"
#include "resp/buffer.h"

namespace headroom::balancer {

class ControlConn {
 public:
  using ReplyFn = std::function<void(redisReply* reply)>;  // reply is nullptr when the connection failed
  using StateFn = std::function<void(bool up)>;

  // `tls`: the slot holding the context to connect over TLS with (empty: plaintext),
  // read at each connect, so reloaded certificates apply to the next connection.
  ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password,
              const std::unique_ptr<proxy::TlsContext>& tls);
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
  // The same for one command already encoded in RESP (a caller that builds large
  // commands often encodes into a buffer of its own).
  bool command_encoded(std::string_view resp_command, ReplyFn fn);

  // For subscriber connections: SUBSCRIBE, then `fn` gets every reply pushed on this
  // connection (the subscribe confirmation, then each message).
  bool subscribe(std::string_view channel, ReplyFn fn);

 private:
  struct Pending {
    ReplyFn fn;
    uint64_t sent_ms;  // loop time it was sent, for the watchdog
  };

  static void on_timer(uv_timer_t* t);
  static void on_watchdog(uv_timer_t* t);
  void connect_now();
  void on_connected(int status);
  void on_read(ssize_t n);
  bool take_replies();
  void on_ready();
  void probe();
  void became_up();
  void send(const std::vector<std::string_view>& argv);
  void schedule_flush();
  void flush();
  // Closes the socket and fails every pending command; then reconnects unless stopping.
  void drop(const std::string& why);
  void schedule_retry();

  uv_loop_t* loop_;
  std::string label_;
  conf::Endpoint address_;
  std::string password_;
  const std::unique_ptr<proxy::TlsContext>& tls_context_;
  StateFn on_state_;

  uv_tcp_t* tcp_ = nullptr;         // owned; freed in its close callback
  uv_connect_t* connect_req_ = nullptr;
  std::unique_ptr<proxy::TlsSession> tls_;
  redisReader* reader_ = nullptr;
  uv_timer_t* timer_ = nullptr;     // connect timeout, reconnect backoff, PING while loading; owned
  uv_timer_t* watchdog_ = nullptr;  // checks for a server that stopped answering; owned
  // Writes everything queued before the loop next waits for I/O: an idle handle runs
  // in the same loop turn when started from a timer, and keeps the loop from blocking
  // when started later in a turn. owned.
  uv_idle_t* flusher_ = nullptr;

  resp::Buffer out_;  // commands not yet handed to the kernel (plaintext)
  resp::Buffer in_;   // TLS only: decrypted reply bytes for the reader

  std::deque<Pending> pending_;  // commands sent and unanswered, oldest first
  ReplyFn subscription_;         // set once SUBSCRIBE is sent: gets every reply
  uint64_t connection_ = 0;      // incremented per drop: callbacks of an older connection are ignored
  uint32_t backoff_ms_ = 100;
  std::string last_failure_;  // why the last attempt failed: logged once per new reason
  bool up_ = false;         // connected and authenticated: commands may be sent
  bool connected_ = false;  // TCP (and TLS) up, maybe not yet authenticated
  bool connecting_ = false;  // an attempt is in progress; timer_ bounds it
  bool stopping_ = false;
  bool loading_logged_ = false;  // "loading its data" said once per connection
};

}  // namespace headroom::balancer
