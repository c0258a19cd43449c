#include "net/stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>

#include "net/address.h"

namespace headroom::net {

// The libuv side of one connection. It outlives the Stream when the Stream closes
// with a write, a connect or a close still in flight: the callbacks find `stream`
// null and only count the handles down; the last close callback frees the block.
struct Stream::Socket {
  uv_tcp_t tcp;
  uv_timer_t timer;  // connect timeout; initialised for outbound connections only
  uv_connect_t connect;
  uv_write_t write;
  resp::Buffer writing;  // the bytes of the uv_write in flight
  Stream* stream = nullptr;
  bool write_active = false;
  bool has_timer = false;
  int open_handles = 0;
  std::string deferred_failure;  // a connect that failed at once, reported from the timer
};

namespace {

template <typename S>
void handle_closed(uv_handle_t* h) {
  auto* s = static_cast<S*>(h->data);
  if (--s->open_handles == 0) delete s;
}

}  // namespace

Stream::Stream(uv_loop_t* loop, Owner& owner, resp::Buffer& input) : loop_(loop), owner_(owner), in_(input) {}

Stream::~Stream() { close(); }

void Stream::apply_options(uv_tcp_t* tcp) {
  uv_tcp_nodelay(tcp, 1);
  if (options_.keepalive_s == 0) return;
  // Set here rather than with uv_tcp_keepalive, whose Debian build also sets an
  // interval of 1 s and 10 probes: the first probe after the idle time, then every
  // third of it, three probes, so a dead peer is noticed within about twice the idle
  // time rather than Linux's default of eleven minutes after it.
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(tcp), &fd) != 0) return;
  int on = 1;
  int idle = static_cast<int>(options_.keepalive_s);
  int interval = static_cast<int>(std::max<uint32_t>(1, options_.keepalive_s / 3));
  int count = 3;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

bool Stream::accept(uv_stream_t* listener, const TlsContext* tls, const StreamOptions& options) {
  close();
  options_ = options;
  tls_failed_ = false;
  sock_ = new Socket;
  sock_->stream = this;
  uv_tcp_init(loop_, &sock_->tcp);
  sock_->tcp.data = sock_;
  sock_->open_handles = 1;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(&sock_->tcp)) != 0) {
    close();
    return false;
  }
  connected_ = true;
  apply_options(&sock_->tcp);
  peer_ = peer_of(&sock_->tcp);
  if (tls != nullptr) tls_ = std::make_unique<TlsSession>(*tls, std::string());
  start_reading();
  return true;
}

void Stream::connect(const conf::Endpoint& to, const TlsContext* tls, const StreamOptions& options) {
  close();
  options_ = options;
  peer_ = conf::to_string(to);
  tls_failed_ = false;
  sock_ = new Socket;
  sock_->stream = this;
  uv_tcp_init(loop_, &sock_->tcp);
  uv_timer_init(loop_, &sock_->timer);
  sock_->tcp.data = sock_->timer.data = sock_->connect.data = sock_;
  sock_->has_timer = true;
  sock_->open_handles = 2;
  if (tls != nullptr) tls_ = std::make_unique<TlsSession>(*tls, to.host);

  auto on_timer = [](uv_timer_t* t) {
    auto* s = static_cast<Socket*>(t->data);
    if (s->stream == nullptr) return;
    if (!s->deferred_failure.empty()) s->stream->fail(std::string(s->deferred_failure));
    else s->stream->fail("connect to " + s->stream->peer_ + " timed out");
  };
  sockaddr_storage addr;
  int rc = to_sockaddr(to, addr);
  if (rc == 0)
    rc = uv_tcp_connect(&sock_->connect, &sock_->tcp, reinterpret_cast<const sockaddr*>(&addr),
                        [](uv_connect_t* req, int status) {
                          auto* s = static_cast<Socket*>(req->data);
                          if (s->stream != nullptr) s->stream->on_connect(status);
                        });
  if (rc != 0) {
    // Reported from the loop, as every other outcome: never from inside connect().
    sock_->deferred_failure = "connect to " + peer_ + " failed: " + uv_strerror(rc);
    uv_timer_start(&sock_->timer, on_timer, 0, 0);
    return;
  }
  if (options_.connect_timeout_ms != 0) uv_timer_start(&sock_->timer, on_timer, options_.connect_timeout_ms, 0);
}

void Stream::on_connect(int status) {
  if (status != 0) {
    fail("connect to " + peer_ + " failed: " + uv_strerror(status));
    return;
  }
  connected_ = true;
  apply_options(&sock_->tcp);
  start_reading();
  if (!tls_) {
    uv_timer_stop(&sock_->timer);
    owner_.on_stream_open();
    return;
  }
  // The connect timeout covers the handshake too: a server that accepts and never
  // answers (a plaintext port, a stopped process) is given up on the same way.
  if (!tls_->start_handshake()) {
    tls_failed_ = true;
    fail(tls_->error());
    return;
  }
  flush_tls();  // the ClientHello
}

void Stream::start_reading() {
  reading_ = true;
  if (paused_) return;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&sock_->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* s = static_cast<Socket*>(h->data);
        Stream* self = s->stream;
        if (self == nullptr) {
          *buf = uv_buf_init(nullptr, 0);
        } else if (self->tls_) {
          *buf = TlsSession::read_space();  // consumed at once by the read callback
        } else {
          buf->base = self->in_.writable(self->options_.read_chunk);
          buf->len = self->in_.writable_size();
        }
      },
      [](uv_stream_t* h, ssize_t n, const uv_buf_t*) {
        auto* s = static_cast<Socket*>(h->data);
        if (s->stream != nullptr) s->stream->on_read(n);
      });
}

void Stream::pause_reading() {
  if (paused_) return;
  paused_ = true;
  if (sock_ != nullptr && reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&sock_->tcp));
}

void Stream::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (sock_ != nullptr && reading_) start_reading();
}

void Stream::on_read(ssize_t n) {
  if (n < 0) {
    fail(n == UV_EOF ? "connection closed by peer" : uv_strerror(static_cast<int>(n)));
    return;
  }
  if (n == 0) return;
  if (tls_) {
    on_tls_read(static_cast<size_t>(n));
    return;
  }
  in_.commit(static_cast<size_t>(n));
  owner_.on_stream_data(static_cast<size_t>(n));
}

// Ciphertext arrived: it may advance the handshake, carry data, or both.
void Stream::on_tls_read(size_t n) {
  const uint64_t gen = generation_;
  const bool was_established = tls_->established();
  if (!tls_->received(n)) {
    // The alert that says why (unknown ca, certificate required) goes out first,
    // directly: the close follows at once.
    flush_tls();
    if (gen != generation_) return;
    tls_failed_ = true;
    fail(tls_->error());
    return;
  }
  if (!was_established && tls_->established()) {
    if (sock_->has_timer) uv_timer_stop(&sock_->timer);
    owner_.on_stream_open();
    if (gen != generation_) return;
  }
  for (;;) {
    ssize_t got = tls_->decrypt(in_, options_.read_chunk);
    if (got < 0) {
      tls_failed_ = !tls_->closed();
      fail(tls_->closed() ? "connection closed by peer" : tls_->error());
      return;
    }
    if (got == 0) break;
    owner_.on_stream_data(static_cast<size_t>(got));
    if (gen != generation_) return;
  }
  flush_tls();  // handshake messages, session tickets, alerts
}

// Moves the ciphertext OpenSSL has waiting (handshake, alerts) to the socket.
bool Stream::flush_tls() {
  if (sock_ == nullptr || !connected_) return false;
  resp::Buffer none;
  if (!tls_->seal(none, cipher_)) {
    fail(tls_->error());
    return false;
  }
  send(cipher_);
  return true;
}

void Stream::write(resp::Buffer& out) {
  if (sock_ == nullptr) {
    out.clear();
    return;
  }
  if (!established()) {
    if (tls_ && connected_) flush_tls();
    return;  // `out` waits for on_stream_open
  }
  if (!tls_) {
    send(out);
    return;
  }
  if (plain_.empty()) plain_.swap(out);
  else plain_.append(out.view());
  out.clear();
  seal_more();
}

// Seals the plaintext waiting, a slice at a time, while the kernel takes each slice
// at once; what remains waits for the write in flight to complete.
void Stream::seal_more() {
  while (sock_ != nullptr && !plain_.empty() && !sock_->write_active) {
    if (!tls_->seal(plain_, cipher_)) {
      fail(tls_->error());
      return;
    }
    send(cipher_);
  }
  plain_.shrink_if_idle(1 << 20);
}

// The one write path: straight to the kernel when nothing is queued, else behind the
// write in flight.
void Stream::send(resp::Buffer& bytes) {
  if (bytes.empty() || sock_ == nullptr) return;
  if (sock_->write_active) {
    if (queued_.empty()) queued_.swap(bytes);
    else queued_.append(bytes.view());
    bytes.clear();
    return;
  }
  auto* tcp = reinterpret_cast<uv_stream_t*>(&sock_->tcp);
  uv_buf_t b = uv_buf_init(bytes.data(), static_cast<unsigned>(bytes.size()));
  int n = uv_try_write(tcp, &b, 1);
  if (n >= 0 && static_cast<size_t>(n) == bytes.size()) {
    bytes.clear();
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    fail(uv_strerror(n));
    return;
  }
  if (n > 0) bytes.consume(static_cast<size_t>(n));
  sock_->writing.swap(bytes);
  bytes.clear();
  b = uv_buf_init(sock_->writing.data(), static_cast<unsigned>(sock_->writing.size()));
  sock_->write.data = sock_;
  sock_->write_active = true;
  int rc = uv_write(&sock_->write, tcp, &b, 1, [](uv_write_t* req, int status) {
    auto* s = static_cast<Socket*>(req->data);
    s->write_active = false;
    s->writing.clear();
    s->writing.shrink_if_idle(1 << 20);
    if (s->stream != nullptr) s->stream->on_written(status);
  });
  if (rc != 0) {
    sock_->write_active = false;
    fail(uv_strerror(rc));
  }
}

void Stream::on_written(int status) {
  if (status != 0) {
    fail(uv_strerror(status));
    return;
  }
  if (!queued_.empty()) send(queued_);
  if (tls_ && !plain_.empty()) seal_more();
  if (sock_ != nullptr && !sock_->write_active) owner_.on_stream_drained();
}

std::string Stream::local_address() const { return sock_ != nullptr ? local_of(&sock_->tcp) : std::string(); }

int Stream::fd() const {
  uv_os_fd_t fd = -1;
  if (sock_ == nullptr || uv_fileno(reinterpret_cast<const uv_handle_t*>(&sock_->tcp), &fd) != 0) return -1;
  return fd;
}

size_t Stream::unsent() const {
  return (sock_ != nullptr ? sock_->writing.size() : 0) + queued_.size() + cipher_.size() + plain_.size();
}

void Stream::close(bool reset) {
  if (sock_ == nullptr) return;
  ++generation_;
  Socket* s = sock_;
  sock_ = nullptr;
  s->stream = nullptr;
  auto* tcp = reinterpret_cast<uv_handle_t*>(&s->tcp);
  if (reset && connected_ && uv_tcp_close_reset(&s->tcp, handle_closed<Socket>) == 0) {
    // closing with an RST
  } else {
    uv_close(tcp, handle_closed<Socket>);
  }
  if (s->has_timer) uv_close(reinterpret_cast<uv_handle_t*>(&s->timer), handle_closed<Socket>);
  connected_ = reading_ = false;
  queued_.clear();
  cipher_.clear();
  plain_.clear();
  tls_.reset();
}

void Stream::fail(std::string_view why) {
  std::string reason(why);  // `why` may live in what close() frees
  close();
  owner_.on_stream_closed(reason);
}

}  // namespace headroom::net
