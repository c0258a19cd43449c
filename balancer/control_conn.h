// A control-plane connection to one Redis server (the main server, or a data node's
// poller), on net::Stream: commands encoded with resp/reply_writer.h, replies parsed
// by hiredis's redisReader into redisReply objects (fine off the data path). It
// connects, authenticates, waits until the server has loaded its data, reconnects
// with backoff when the connection drops, and tells its owner when it is up or down.
//
// Bounds, all from the config's timeouts: a connect (and TLS handshake) longer than
// connect_ms, or a command unanswered for longer than request_ms, drops the
// connection. An idle connection is probed with PING every heartbeat, so one that
// went half-open (a peer or a middlebox that silently stopped forwarding) is found
// within a heartbeat plus request_ms, subscriber connections included.
//
// Why not hiredis's async API: the hiredis Debian ships (0.14) has no TLS, and its
// libuv adapter drops poll errors (a refused connect was never reported).
#pragma once

#include <hiredis/hiredis.h>
#include <uv.h>

#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "balancer/reply_arena.h"
#include "conf/config.h"
#include "net/backoff.h"
#include "net/stream.h"
#include "net/tls.h"
#include "resp/buffer.h"
#include "resp/ring.h"

namespace headroom::balancer {

// A string, status or error reply's text.
inline std::string_view reply_text(const redisReply* r) { return {r->str, r->len}; }

struct ControlTimeouts {
  uint32_t connect_ms = 1000;   // connect and TLS handshake
  uint32_t command_ms = 5000;   // a command's reply (0 in the config: kFallbackCommandMs)
  uint32_t keepalive_s = 60;
  uint32_t heartbeat_ms = 1000;  // PING an idle connection this often

  // The config's timeouts as the control plane applies them.
  static ControlTimeouts from(const conf::Config& c);
};

class ControlConn final : private net::Stream::Owner {
 public:
  using ReplyFn = std::function<void(redisReply* reply)>;  // reply is nullptr when the connection failed
  using StateFn = std::function<void(bool up)>;

  // `tls`: the slot holding the context to connect over TLS with (empty: plaintext),
  // read at each connect, so reloaded certificates apply to the next connection.
  ControlConn(uv_loop_t* loop, std::string label, conf::Endpoint address, std::string password,
              const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts);
  ~ControlConn();
  ControlConn(const ControlConn&) = delete;
  ControlConn& operator=(const ControlConn&) = delete;

  // Starts connecting; `on_state` is called with true once connected (and
  // authenticated, and past LOADING), false each time it is lost.
  void start(StateFn on_state);
  // The name the connection gives itself (CLIENT SETNAME) at each connect, so CLIENT
  // LIST on the server says which part of headroom holds it ("hr-coordinator").
  void set_client_name(std::string name) { client_name_ = std::move(name); }
  void stop();

  bool up() const { return up_; }
  const std::string& label() const { return label_; }

  // Sends a command. Returns false (and does not call `fn`) when not connected:
  // whatever waits for `fn` (a flag, a count) must not wait then, hence nodiscard.
  // argv is read during the call only; a braced list builds no vector.
  [[nodiscard]] bool command(std::span<const std::string_view> argv, ReplyFn fn);
  [[nodiscard]] bool command(std::initializer_list<std::string_view> argv, ReplyFn fn) {
    return command(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(fn));
  }
  // The same for one command already encoded in RESP (a caller that builds large
  // commands often encodes into a buffer of its own).
  [[nodiscard]] bool command_encoded(std::string_view resp_command, ReplyFn fn);
  // A command whose reply nothing waits for (best effort: dropped when not connected;
  // what it does is done again, or found by the sweep, if it is lost).
  void post(std::span<const std::string_view> argv) { (void)command(argv, [](redisReply*) {}); }
  void post(std::initializer_list<std::string_view> argv) {
    post(std::span<const std::string_view>(argv.begin(), argv.size()));
  }
  void post_encoded(std::string_view resp_command) { (void)command_encoded(resp_command, [](redisReply*) {}); }

  // For subscriber connections: SUBSCRIBE, then `fn` gets every message pushed on
  // this connection (the subscribe confirmations, then each message); heartbeat
  // replies are kept from it.
  bool subscribe(const std::vector<std::string_view>& channels, ReplyFn fn);

 private:
  struct Pending {
    ReplyFn fn;
    uint64_t sent_ms = 0;  // loop time it was sent, for the command timeout
  };

  // net::Stream::Owner
  void on_stream_open() override;
  void on_stream_data(size_t n) override;
  void on_stream_closed(std::string_view why) override;

  static void on_timer(uv_timer_t* t);
  static void on_watchdog(uv_timer_t* t);
  void connect_now();
  bool take_replies();
  void probe();
  void became_up();
  void send(std::span<const std::string_view> argv, ReplyFn fn);
  void send(std::initializer_list<std::string_view> argv, ReplyFn fn) {
    send(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(fn));
  }
  void schedule_flush();
  void flush();
  // Closes the socket and fails every pending command; then reconnects unless stopping.
  void drop(const std::string& why);
  void schedule_retry();

  uv_loop_t* loop_;
  std::string label_;
  conf::Endpoint address_;
  std::string password_;
  std::string client_name_;
  const std::unique_ptr<net::TlsContext>& tls_context_;
  ControlTimeouts timeouts_;
  StateFn on_state_;

  resp::Buffer in_;   // plaintext read, handed to the reader at once
  resp::Buffer out_;  // commands not yet written
  net::Stream stream_;
  net::Backoff backoff_;
  ReplyArena arena_;  // the replies' memory (declared before the reader it outlives)
  redisReader* reader_ = nullptr;
  uv_timer_t* timer_ = nullptr;     // reconnect backoff, PING while loading; owned
  uv_timer_t* watchdog_ = nullptr;  // command timeout and heartbeat; owned
  // Writes everything queued before the loop next waits for I/O: an idle handle runs
  // in the same loop turn when started from a timer, and keeps the loop from blocking
  // when started later in a turn. owned.
  uv_idle_t* flusher_ = nullptr;

  resp::Ring<Pending> pending_;  // commands sent and unanswered, oldest first
  ReplyFn subscription_;         // set once SUBSCRIBE is sent: gets every pushed message
  uint64_t last_read_ms_ = 0;    // loop time bytes last arrived
  std::string last_failure_;     // why the last attempt failed: logged once per new reason
  bool up_ = false;              // connected and ready: commands may be sent
  bool connecting_ = false;      // an attempt is in progress
  bool stopping_ = false;
  bool loading_logged_ = false;  // "loading its data" said once per connection
};

}  // namespace headroom::balancer
