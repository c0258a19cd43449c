// One client connection: reads and frames requests, keeps them in queue_ in arrival
// order, hands them to the Router in that order, and writes replies from the head of
// queue_ as they complete (see the picture in request.h).
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "proxy/request.h"
#include "proxy/tls.h"
#include "resp/buffer.h"
#include "resp/request_parser.h"

namespace headroom::proxy {

class Server;

class ClientConn {
 public:
  ClientConn(Server& server, uint64_t id);
  ~ClientConn();
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Accepts the pending connection on `listener` and starts reading; over TLS when
  // `tls` is set. false on failure (the object must then be closed with close()).
  bool accept(uv_stream_t* listener, const TlsContext* tls);

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  bool authenticated() const { return authenticated_; }
  void set_authenticated(bool a) { authenticated_ = a; }
  const std::string& peer() const { return peer_; }

  // A request of this client completed: write every completed reply at the head.
  void request_done();
  // A request that waited (placement) may now go: dispatch queued requests in order.
  void pump();

  // The head of queue_ is `req` and its reply is `reply`: write it without a copy
  // into the request. Returns false when `req` is not the head.
  bool deliver_head(Request* req, std::string_view reply);

  // Writes what out_ holds (one uv_write); called once per loop turn.
  void flush();

  // MONITOR: queues one line of another client's command (closes this client when
  // it does not read them fast enough: max_client_output_bytes).
  void feed_monitor(std::string_view line);

  // Stops reading; closes once every queued reply has been written (QUIT, protocol error).
  void close_after_replies();
  // Closes now; queued requests become orphans.
  void close();
  // Stops reading new requests (graceful shutdown); closes once replies are out.
  void drain() { close_after_replies(); }

  bool idle() const { return queue_.empty() && !writing_ && out_.empty(); }
  // Loop time (ms) of the last bytes read from this client.
  uint64_t last_read_ms() const { return last_read_ms_; }

 private:
  void start_reading();
  void on_read(ssize_t n);
  void on_tls_read(size_t n);
  void on_plaintext(size_t n);
  void write_ready_replies();
  void check_limits();
  void maybe_finish_close();

  Server& server_;
  uint64_t id_;
  std::string name_;
  std::string peer_;
  uv_tcp_t* tcp_;  // owned; freed in its close callback (which also deletes this)
  uv_write_t write_req_;
  bool writing_ = false;
  bool reading_ = false;
  bool read_paused_ = false;   // by max_pipeline
  bool closing_ = false;       // no more reads; close when replies are out
  bool closed_ = false;        // uv_close called
  bool dirty_ = false;
  uint64_t last_read_ms_ = 0;
  bool authenticated_ = false;

  std::unique_ptr<TlsSession> tls_;  // nullptr: plaintext
  resp::Buffer in_;
  resp::RequestParser parser_;
  std::deque<Request*> queue_;     // requests not yet answered, in arrival order
  size_t dispatched_count_ = 0;    // queue_'s first N requests have been dispatched
  resp::Buffer out_;               // replies not yet handed to the kernel
  resp::Buffer writing_buf_;       // replies of the uv_write in progress (ciphertext over TLS)

  friend class Server;
};

}  // namespace headroom::proxy
