#include "proxy/client_conn.h"

#include <spdlog/spdlog.h>

#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {
constexpr size_t kReadChunk = 16 * 1024;

resp::RequestLimits limits_of(const conf::Config& c) {
  return {c.max_request_bytes, c.max_bulk_bytes, c.max_args};
}
}  // namespace

ClientConn::ClientConn(Server& server, uint64_t id)
    : server_(server), id_(id), authenticated_(server.config().requirepass.empty()),
      parser_(limits_of(server.config())) {
  tcp_ = new uv_tcp_t;
  uv_tcp_init(server_.loop(), tcp_);
  tcp_->data = this;
}

ClientConn::~ClientConn() = default;

bool ClientConn::accept(uv_stream_t* listener, const TlsContext* tls) {
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(tcp_)) != 0) return false;
  if (tls != nullptr) tls_ = std::make_unique<TlsSession>(*tls, std::string());
  uv_tcp_nodelay(tcp_, 1);
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getpeername(tcp_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    char ip[64] = {0};
    if (addr.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      uv_ip4_name(a, ip, sizeof ip);
      peer_ = std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
    } else if (addr.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      uv_ip6_name(a, ip, sizeof ip);
      peer_ = std::string(ip) + ":" + std::to_string(ntohs(a->sin6_port));
    }
  }
  reading_ = true;
  last_read_ms_ = uv_now(server_.loop());
  start_reading();
  return true;
}

void ClientConn::start_reading() {
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(tcp_),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<ClientConn*>(h->data);
        if (self->tls_) {
          *buf = TlsSession::read_space();
          return;
        }
        buf->base = self->in_.writable(kReadChunk);
        buf->len = self->in_.writable_size();
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t*) { static_cast<ClientConn*>(s->data)->on_read(n); });
}

void ClientConn::on_read(ssize_t n) {
  if (n < 0) {
    close();
    return;
  }
  if (n == 0 || closing_) return;
  last_read_ms_ = uv_now(server_.loop());
  server_.stats().net_input_bytes += static_cast<uint64_t>(n);
  if (tls_) {
    on_tls_read(static_cast<size_t>(n));
    return;
  }
  in_.commit(static_cast<size_t>(n));
  on_plaintext(static_cast<size_t>(n));
}

// Ciphertext arrived: it may advance the handshake, carry requests, or both.
void ClientConn::on_tls_read(size_t n) {
  bool was_established = tls_->established();
  bool ok = tls_->received(n);
  if (ok && !was_established && tls_->established())
    spdlog::debug("client {} ({}): {}", id_, peer_, tls_->describe());
  while (ok && !closing_ && !closed_) {
    ssize_t got = tls_->decrypt(in_, kReadChunk);
    if (got <= 0) {
      ok = got == 0;
      break;
    }
    on_plaintext(static_cast<size_t>(got));
  }
  if (!ok) {
    // As Redis: a failed handshake (a plaintext client, an untrusted certificate) or
    // a broken record closes the connection, after the TLS alert that says why (the
    // client's library reports it: "unknown ca", "certificate required").
    if (!tls_->closed()) {
      ++server_.stats().tls_errors;
      spdlog::debug("client {} ({}): {}", id_, peer_, tls_->error());
    }
    if (tls_->wants_write()) flush();
    close_after_replies();
    return;
  }
  if (tls_->wants_write() && !dirty_) {
    dirty_ = true;
    server_.mark_dirty(this);
  }
}

// The last `n` bytes of in_ just arrived: frame and dispatch the requests they complete.
void ClientConn::on_plaintext(size_t n) {
  parser_.feed(in_.data() + in_.size() - n, n);

  Router& router = server_.router();
  for (;;) {
    resp::RequestView view;
    auto res = parser_.next(in_, view);
    if (res == resp::RequestParser::Result::kNeedMore) break;
    if (res == resp::RequestParser::Result::kError) {
      // As Redis: reply with the protocol error, then close once earlier replies are out.
      ++server_.stats().protocol_errors;
      spdlog::debug("client {} ({}): {}", id_, peer_, parser_.error());
      Request* err = server_.new_request();
      err->client = this;
      err->dispatched = err->done = true;
      resp::add_error(err->reply, parser_.error());
      queue_.push_back(err);
      ++dispatched_count_;
      close_after_replies();
      break;
    }
    if (view.argv.empty()) {  // an empty line or "*0": nothing to do, as in Redis
      in_.consume(view.consumed);
      continue;
    }
    Request* req = server_.new_request();
    req->client = this;
    req->argv.assign(view.argv.begin(), view.argv.end());
    req->raw = view.raw;
    if (server_.has_monitors() && authenticated_) server_.feed_monitors(*this, req->argv);
    queue_.push_back(req);
    ++server_.stats().commands_processed;
    router.prepare(req);
    if (dispatched_count_ + 1 == queue_.size() && router.dispatch(req)) {
      ++dispatched_count_;
    } else {
      req->take_ownership();  // it waits: its bytes must outlive the input buffer
    }
    in_.consume(view.consumed);
    if (closing_) break;  // QUIT
  }
  in_.shrink_if_idle(64 * 1024);
  write_ready_replies();
  check_limits();
}

void ClientConn::pump() {
  Router& router = server_.router();
  while (dispatched_count_ < queue_.size()) {
    Request* r = queue_[dispatched_count_];
    if (!router.dispatch(r)) break;
    ++dispatched_count_;
  }
  write_ready_replies();
  check_limits();
}

void ClientConn::request_done() { write_ready_replies(); }

bool ClientConn::deliver_head(Request* req, std::string_view reply) {
  if (queue_.empty() || queue_.front() != req) return false;
  out_.append(reply);
  queue_.pop_front();
  --dispatched_count_;
  server_.free_request(req);
  write_ready_replies();
  return true;
}

void ClientConn::write_ready_replies() {
  while (!queue_.empty() && queue_.front()->done) {
    Request* r = queue_.front();
    out_.append(r->reply.view());
    queue_.pop_front();
    --dispatched_count_;
    server_.free_request(r);
  }
  if (!out_.empty() && !dirty_) {
    dirty_ = true;
    server_.mark_dirty(this);
  }
  if (closing_) maybe_finish_close();
}

void ClientConn::check_limits() {
  const auto& cfg = server_.config();
  if (out_.size() + writing_buf_.size() > cfg.max_client_output_bytes) {
    spdlog::warn("client {} ({}): closed: output buffer over max_client_output_bytes ({} bytes)", id_, peer_,
                 out_.size() + writing_buf_.size());
    close();
    return;
  }
  // A client that pipelines more than max_pipeline requests waits (we stop reading)
  // until the backlog halves: its memory in the proxy stays bounded.
  if (!read_paused_ && reading_ && queue_.size() >= cfg.max_pipeline) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
    read_paused_ = true;
  } else if (read_paused_ && queue_.size() <= cfg.max_pipeline / 2 && !closing_) {
    read_paused_ = false;
    start_reading();
  }
}

void ClientConn::flush() {
  dirty_ = false;
  if (closed_ || writing_) return;
  if (tls_) {
    if (!tls_->seal(out_, writing_buf_)) {
      spdlog::debug("client {} ({}): {}", id_, peer_, tls_->error());
      close();
      return;
    }
    if (writing_buf_.empty()) return;
  } else {
    if (out_.empty()) return;
    writing_buf_.swap(out_);
    out_.clear();
  }
  server_.stats().net_output_bytes += writing_buf_.size();
  uv_buf_t b = uv_buf_init(writing_buf_.data(), static_cast<unsigned>(writing_buf_.size()));
  write_req_.data = this;
  writing_ = true;
  int rc = uv_write(&write_req_, reinterpret_cast<uv_stream_t*>(tcp_), &b, 1, [](uv_write_t* req, int status) {
    auto* self = static_cast<ClientConn*>(req->data);
    self->writing_ = false;
    self->writing_buf_.clear();
    self->writing_buf_.shrink_if_idle(1 << 20);
    if (status != 0) {
      self->close();
      return;
    }
    if (!self->out_.empty() || (self->tls_ && self->tls_->wants_write())) self->flush();
    else if (self->closing_) self->maybe_finish_close();
    if (self->read_paused_) self->check_limits();
  });
  if (rc != 0) {
    writing_ = false;
    close();
  }
}

void ClientConn::feed_monitor(std::string_view line) {
  if (closed_ || closing_) return;
  out_.append(line);
  if (out_.size() + writing_buf_.size() > server_.config().max_client_output_bytes) {
    spdlog::warn("client {} ({}): monitor closed: output buffer over max_client_output_bytes", id_, peer_);
    close();
    return;
  }
  if (!dirty_) {
    dirty_ = true;
    server_.mark_dirty(this);
  }
}

void ClientConn::close_after_replies() {
  closing_ = true;
  if (reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(tcp_));
    reading_ = false;
  }
  maybe_finish_close();
}

void ClientConn::maybe_finish_close() {
  if (closed_) return;
  if (queue_.empty() && out_.empty() && !writing_) close();
}

void ClientConn::close() {
  if (closed_) return;
  closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(tcp_), [](uv_handle_t* h) {
    auto* self = static_cast<ClientConn*>(h->data);
    delete reinterpret_cast<uv_tcp_t*>(h);
    self->server_.client_closed(self);
  });
}

}  // namespace headroom::proxy
