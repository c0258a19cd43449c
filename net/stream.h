// One TCP connection over libuv, plaintext or TLS: the transport every connection
// kind is built on (clients, data nodes, control connections to the main server and
// the pollers). Written once here: connect with a timeout, accept, TCP_NODELAY and
// keepalive, TLS through net/tls.h, reads into the owner's input buffer, writes that
// go straight to the kernel when they can.
//
// Writes: write(out) first tries uv_try_write, so a reply that fits the socket
// buffer (the common case) costs one write(2) and nothing else: no write request, no
// callback, and no re-arming of the poll for POLLOUT (libuv changes the epoll
// registration when a queued write completes, once per request on an unpipelined
// connection). What the kernel does not take goes out with one uv_write; while that
// is in flight, further bytes queue behind it and follow in one write.
//
// Lifetime: the libuv handles live in a block the close callbacks free, so the
// Stream (and its owner) may go away at any time outside its own callbacks; once
// closed, the Stream calls its owner no more. A Stream can be connected again after
// it closed (backend and control connections reconnect with the same object).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "conf/config.h"
#include "net/tls.h"
#include "resp/buffer.h"

namespace headroom::net {

struct StreamOptions {
  uint32_t keepalive_s = 0;         // TCP keepalive idle time (0: off)
  uint32_t connect_timeout_ms = 0;  // outbound: TCP connect and TLS handshake together (0: none)
  size_t read_chunk = 16 * 1024;    // room offered to each plaintext read
};

class Stream {
 public:
  // What the connection built on a Stream hears from it. Every call comes from a
  // libuv callback, never from inside a Stream method the owner called.
  class Owner {
   public:
    // Outbound: connected (over TLS: the handshake is done). Accepted over TLS: the
    // handshake is done. Accepted plaintext streams are open from accept().
    virtual void on_stream_open() {}
    // `n` bytes of plaintext were appended to the input buffer.
    virtual void on_stream_data(size_t n) = 0;
    // Every byte given to write() has reached the kernel.
    virtual void on_stream_drained() {}
    // The connection failed, timed out or was closed by the peer; the Stream is closed
    // now. `why` is for logs ("connection closed by peer", "connect timed out", ...).
    virtual void on_stream_closed(std::string_view why) = 0;

   protected:
    ~Owner() = default;
  };

  // `input` receives the plaintext read; it must outlive the Stream.
  Stream(uv_loop_t* loop, Owner& owner, resp::Buffer& input);
  ~Stream();  // closes without calling the owner
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Takes the pending connection on `listener` and starts reading; TLS with `tls`
  // (the handshake runs as bytes arrive). false when accepting failed.
  bool accept(uv_stream_t* listener, const TlsContext* tls, const StreamOptions& options);

  // Starts connecting to `to` (TLS with `tls`, checking the certificate against
  // `to`'s address or the context's server name); on_stream_open or on_stream_closed
  // follows, later.
  void connect(const conf::Endpoint& to, const TlsContext* tls, const StreamOptions& options);

  // Sends what `out` holds and leaves it empty; over TLS before the handshake is
  // done, `out` is left as it is (write it again from on_stream_open). On a closed
  // stream the bytes are dropped.
  void write(resp::Buffer& out);
  // Bytes given to write() that the kernel has not taken yet.
  size_t unsent() const;

  void pause_reading();
  void resume_reading();

  // Closes the socket; the owner hears nothing more. `reset`: an RST that discards
  // what the kernel has not sent yet, so a request given up on (a timeout) can never
  // reach the server later.
  void close(bool reset = false);

  bool is_open() const { return sock_ != nullptr; }
  // Open and, over TLS, past the handshake: bytes written now go out.
  bool established() const { return sock_ != nullptr && connected_ && (!tls_ || tls_->established()); }
  const std::string& peer() const { return peer_; }
  // The local end's "ip:port" ("" while closed), asked of the kernel: for CLIENT LIST,
  // not for every connection.
  std::string local_address() const;
  // The socket's file descriptor, or -1 while closed.
  int fd() const;
  const TlsSession* tls() const { return tls_.get(); }
  // The last close was TLS refusing the peer (a failed handshake, a broken record),
  // not the network or the peer leaving.
  bool tls_failed() const { return tls_failed_; }

 private:
  struct Socket;

  void start_reading();
  void on_connect(int status);
  void on_read(ssize_t n);
  void on_tls_read(size_t n);
  void on_written(int status);
  void send(resp::Buffer& bytes);
  void seal_more();
  bool flush_tls();
  void fail(std::string_view why);
  void apply_options(uv_tcp_t* tcp);

  uv_loop_t* loop_;
  Owner& owner_;
  resp::Buffer& in_;
  StreamOptions options_;
  Socket* sock_ = nullptr;           // nullptr while closed
  std::unique_ptr<TlsSession> tls_;  // this connection's, over TLS
  resp::Buffer plain_;               // TLS: plaintext written, not sealed yet (sealed in slices)
  resp::Buffer cipher_;              // TLS: ciphertext sealed, about to be sent
  resp::Buffer queued_;              // bytes waiting behind the uv_write in flight
  std::string peer_;
  uint64_t generation_ = 0;          // bumped by close(): a callback for an older socket is ignored
  bool connected_ = false;           // TCP is up
  bool reading_ = false;
  bool paused_ = false;
  bool tls_failed_ = false;
};

}  // namespace headroom::net
