// One pipelined, multiplexed connection to a data node: the data path's upstream.
// Many clients' commands are appended to out_ and written with one uv_write per loop
// turn; replies are framed (raw bytes, never decoded) and paired with inflight_'s
// head. On connection loss every in-flight fragment fails with an error naming the
// node, and the connection is retried with exponential backoff.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "balancer/node_registry.h"
#include "conf/config.h"
#include "proxy/tls.h"
#include "resp/buffer.h"
#include "resp/reply_framer.h"

namespace headroom::proxy {

struct Request;
class Server;

class BackendConn {
 public:
  BackendConn(Server& server, balancer::NodeIndex node, const conf::BackendConfig& config);
  ~BackendConn();
  BackendConn(const BackendConn&) = delete;
  BackendConn& operator=(const BackendConn&) = delete;

  void start();
  // Closes the socket; in-flight fragments fail. The object stays usable until
  // destroyed (it is owned by the Server).
  void shutdown();

  bool connected() const { return state_ == State::kConnected; }
  balancer::NodeIndex node() const { return node_; }
  const std::string& name() const { return config_.name; }
  size_t inflight() const { return inflight_.size(); }

  // The buffer to append a command to; call sent() after appending it.
  resp::Buffer& out() { return out_; }
  // Registers the command just appended: its reply goes to (req, fragment).
  void sent(Request* req, uint32_t fragment);

  // Writes what out_ holds (one uv_write); called once per loop turn.
  void flush();

  // The error fragments get while the node is unreachable.
  std::string unavailable_error() const;

  // Called periodically: a connect or a reply that takes longer than the configured
  // timeout fails the connection (every in-flight fragment gets an error naming the
  // node) and a reconnect follows. A node that hangs (SIGSTOP) thus costs clients at
  // most one timeout, never a hang.
  void check_timeouts(uint64_t now_ms, uint32_t connect_timeout_ms, uint32_t request_timeout_ms);

 private:
  // kHandshaking: TCP is up, TLS is not yet (backend_tls only).
  enum class State { kIdle, kConnecting, kHandshaking, kConnected, kClosing };
  struct Pending {
    Request* req;
    uint32_t fragment;
    uint64_t sent_ms;  // loop time when it was queued
  };

  void connect();
  void on_connected(int status);
  void ready();
  void on_read(ssize_t n);
  void on_tls_read(size_t n);
  bool take_replies();
  void on_written(int status);
  void fail(const char* why, const std::string& error);
  void fail(const char* why) { fail(why, unavailable_error()); }
  void schedule_reconnect();

  Server& server_;
  balancer::NodeIndex node_;
  conf::BackendConfig config_;
  State state_ = State::kIdle;
  std::unique_ptr<TlsSession> tls_;  // the current connection's, over TLS
  uv_tcp_t* tcp_ = nullptr;         // owned; freed in its close callback
  uv_timer_t* retry_timer_ = nullptr;
  uv_connect_t connect_req_;
  uv_write_t write_req_;
  bool writing_ = false;
  uint32_t backoff_ms_ = 50;
  uint64_t connected_ms_ = 0;  // loop time the connection became usable; 0 while not
  uint64_t connect_started_ms_ = 0;

  resp::Buffer out_;       // commands not yet handed to the kernel
  resp::Buffer writing_buf_;  // the bytes of the uv_write in progress (ciphertext over TLS)
  resp::Buffer in_;        // reply bytes not yet framed
  resp::ReplyFramer framer_;
  std::deque<Pending> inflight_;
  size_t auth_replies_ = 0;  // AUTH replies to swallow at the head of the stream
};

}  // namespace headroom::proxy
