// One pipelined, multiplexed connection to a data node: the data path's upstream, on
// net::Stream. Many clients' commands are appended to out_ and written once per loop
// turn; replies are framed (raw bytes, never decoded) and paired with inflight_'s
// head. On connection loss every in-flight fragment fails with an error naming the
// node, and the connection is retried with backoff.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "balancer/node_registry.h"
#include "conf/config.h"
#include "net/backoff.h"
#include "net/stream.h"
#include "resp/buffer.h"
#include "resp/reply_framer.h"
#include "resp/ring.h"

namespace headroom::proxy {

struct Request;
class ClientConn;
class Server;

class BackendConn final : private net::Stream::Owner {
 public:
  // `resp3`: the connection says HELLO 3 first, for clients that speak RESP3.
  BackendConn(Server& server, balancer::NodeIndex node, const conf::BackendConfig& config, bool resp3 = false);
  ~BackendConn();
  BackendConn(const BackendConn&) = delete;
  BackendConn& operator=(const BackendConn&) = delete;

  void start();
  // Closes the socket; in-flight fragments fail. The object stays usable until
  // destroyed (it is owned by the Server).
  void shutdown();

  // A connection leased to one client (proxy/leases.h): it tells `lessee` when it is
  // ready (lease_ready) or lost (lease_lost), and never reconnects: the state the
  // client built on it (WATCH) went with it. nullptr: a shared connection.
  void set_lessee(ClientConn* lessee) {
    lessee_ = lessee;
    leased_ = true;
  }
  ClientConn* lessee() const { return lessee_; }

  bool connected() const { return ready_; }
  // Commands sent on this connection, and those answered (or failed), since it was
  // created: what an acknowledgement of the change stream waits for (WriteTracker).
  uint64_t sent_count() const { return sent_count_; }
  uint64_t answered_count() const { return answered_count_; }
  balancer::NodeIndex node() const { return node_; }
  bool resp3() const { return resp3_; }
  size_t inflight() const { return inflight_.size(); }

  // The buffer to append a command to; call sent() after appending it.
  resp::Buffer& out() { return out_; }
  // Registers the command just appended: its reply goes to (req, fragment). A block
  // of commands (a transaction: MULTI, the commands, EXEC) is registered once, with
  // `skip` the replies before its last, which are dropped.
  void sent(Request* req, uint32_t fragment, uint32_t skip = 0);

  // Asks the node whether `key` exists, after everything sent before it on this
  // connection; `fn` gets the answer (true when it cannot be known: the connection
  // failed first).
  void probe_exists(std::string_view key, std::function<void(bool exists)> fn);
  // Sends a command of the proxy's own; `fn` gets its reply (empty when the
  // connection failed first).
  void command(std::span<const std::string_view> argv, std::function<void(std::string_view reply)> fn);

  // A leased connection's client id on the node (CLIENT ID, asked as it connects),
  // for CLIENT UNBLOCK; 0 until known.
  int64_t node_client_id() const { return node_client_id_; }

  // Writes what out_ holds; called once per loop turn for a connection marked dirty.
  void flush();

  // The error fragments get while the node is unreachable.
  std::string unavailable_error() const;

  // Called periodically: a reply later than `request_timeout_ms` fails the
  // connection (every in-flight fragment gets an error naming the node, and the
  // socket is reset so the commands cannot reach the node later) and a reconnect
  // follows. A node that hangs (SIGSTOP) thus costs clients at most one timeout.
  void check_timeouts(uint64_t now_ms, uint32_t request_timeout_ms);

 private:
  struct Pending {
    Request* req = nullptr;  // nullptr: a probe (probes_ has its callback)
    uint32_t fragment = 0;
    uint32_t skip = 0;     // replies still to drop before the one that goes to req
    uint64_t sent_ms = 0;  // loop time when it was queued
  };

  // net::Stream::Owner
  void on_stream_open() override;
  void on_stream_data(size_t n) override;
  void on_stream_closed(std::string_view why) override;

  void connect();
  bool take_replies();
  void init_done(bool fenced);
  void mark_dirty();
  // The connection is lost or given up on: fail what is in flight, reconnect later.
  void fail(std::string_view why, const std::string& error, bool reset);
  void schedule_reconnect();

  Server& server_;
  balancer::NodeIndex node_;
  conf::BackendConfig config_;
  resp::Buffer in_;   // reply bytes not yet framed
  resp::Buffer out_;  // commands not yet written
  net::Stream stream_;
  net::Backoff backoff_;
  uv_timer_t* retry_timer_ = nullptr;  // owned; freed in its close callback
  resp::ReplyFramer framer_;
  resp::Ring<Pending> inflight_;
  resp::Ring<std::function<void(std::string_view)>> probes_;  // the proxy's own commands' callbacks
  resp::Buffer init_;          // the init sequence (AUTH, CLIENT SETNAME, the fence check)
  size_t init_replies_ = 0;    // its replies still to come, ahead of every command's
  size_t init_fence_reply_ = 0;  // init_replies_ when the fence check's reply is next
  int64_t node_client_id_ = 0;
  bool fenced_reply_ = false;
  std::string init_origin_;    // the proxy id the connection named itself after
  uint64_t sent_count_ = 0;
  uint64_t answered_count_ = 0;
  std::string last_failure_; // why the last attempt failed: logged once per new reason
  bool ready_ = false;       // connected (and, over TLS, past the handshake)
  bool dirty_ = false;       // queued for this loop turn's flush
  bool stopping_ = false;
  bool leased_ = false;          // set with a lessee once: never reconnects
  bool resp3_ = false;
  ClientConn* lessee_ = nullptr;
};

}  // namespace headroom::proxy
