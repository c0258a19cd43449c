#include "proxy/client_conn.h"

#include <spdlog/spdlog.h>

#include "proxy/pubsub.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

namespace {
resp::RequestLimits limits_of(const conf::Config& c) {
  return {c.max_request_bytes, c.max_bulk_bytes, c.max_args};
}

// (UN)SUBSCRIBE and the like: answered by confirmations, which Redis sends as pushes.
bool confirmed_by_pushes(const resp::CommandInfo* cmd) {
  using resp::LocalCommand;
  if (cmd == nullptr) return false;
  switch (cmd->local) {
    case LocalCommand::Subscribe:
    case LocalCommand::Psubscribe:
    case LocalCommand::Ssubscribe:
    case LocalCommand::Unsubscribe:
    case LocalCommand::Punsubscribe:
    case LocalCommand::Sunsubscribe:
      return true;
    default:
      return false;
  }
}
}  // namespace

ClientConn::ClientConn(Server& server, uint64_t id)
    : server_(server), id_(id), stream_(server.loop(), *this, in_), framer_(limits_of(server.config())),
      authenticated_(server.config().requirepass.empty()) {}

ClientConn::~ClientConn() = default;

bool ClientConn::accept(uv_stream_t* listener, const net::TlsContext* tls) {
  net::StreamOptions options;
  options.keepalive_s = server_.config().tcp_keepalive_s;
  if (!stream_.accept(listener, tls, options)) return false;
  last_read_ms_ = connected_ms_ = uv_now(server_.loop());
  return true;
}

void ClientConn::on_stream_data(size_t n) {
  last_read_ms_ = uv_now(server_.loop());
  read_ns_ = uv_hrtime();  // one clock read per read: the start of every request it brings
  server_.stats().net_input_bytes += n;
  if (closing_) {  // after QUIT, a protocol error or a refusal: nothing more is read
    in_.clear();
    return;
  }
  frame_requests();
}

void ClientConn::on_stream_closed(std::string_view why) {
  if (stream_.tls_failed()) {
    // As Redis: a failed handshake (a plaintext client, an untrusted certificate) or
    // a broken record closes the connection, after the TLS alert that says why.
    ++server_.stats().tls_errors;
    spdlog::debug("client {} ({}): {}", id_, peer(), why);
  }
  close();
}

// Frames and dispatches every request in_ completes.
void ClientConn::frame_requests() {
  Router& router = server_.router();
  for (;;) {
    resp::RequestView view;
    auto res = framer_.next(in_, view);
    if (res == resp::RequestFramer::Result::kNeedMore) break;
    if (res == resp::RequestFramer::Result::kError) {
      // As Redis: reply with the protocol error, then close once earlier replies are out.
      ++server_.stats().protocol_errors;
      spdlog::debug("client {} ({}): {}", id_, peer(), framer_.error());
      Request* err = server_.requests().acquire();
      err->client = this;
      err->done = true;
      resp::add_error(err->reply, framer_.error());
      queue_.push_back(err);
      ++dispatched_;
      close_after_replies();
      in_.clear();
      break;
    }
    if (view.argv.empty()) {  // an empty line or "*0": nothing to do, as in Redis
      in_.consume(view.consumed);
      continue;
    }
    Request* req = server_.requests().acquire();
    req->client = this;
    req->start_ns = read_ns_;
    req->argv.assign(view.argv.begin(), view.argv.end());
    req->raw = view.raw;
    if (server_.has_monitors() && authenticated_) server_.feed_monitors(*this, req->argv);
    queue_.push_back(req);
    ++server_.stats().commands_processed;
    router.prepare(req);
    if (dispatched_ + 1 == queue_.size() && router.dispatch(req)) ++dispatched_;
    else req->take_ownership();  // it waits: its bytes must outlive the input buffer
    in_.consume(view.consumed);
    if (closing_ || closed_) break;  // QUIT, SHUTDOWN, or the output limit
  }
  in_.shrink_if_idle(64 * 1024);
  if (closed_) return;
  write_ready_replies();
  check_pipeline();
}

void ClientConn::pump() {
  Router& router = server_.router();
  while (dispatched_ < queue_.size() && !closed_) {
    if (!router.dispatch(queue_[dispatched_])) break;
    ++dispatched_;
  }
  write_ready_replies();
  check_pipeline();
}

bool ClientConn::deliver_head(Request* req, std::string_view reply) {
  if (queue_.empty() || queue_.front() != req) return false;
  queue_.pop_front();
  --dispatched_;
  server_.answered(*req);
  output_reply(req, reply);
  server_.requests().release(req);
  write_ready_replies();
  return true;
}

void ClientConn::write_ready_replies() {
  while (!closed_ && !queue_.empty() && queue_.front()->done) {
    Request* r = queue_.front();
    queue_.pop_front();
    --dispatched_;
    output_reply(r, r->reply.view());
    server_.answered(*r);
    server_.requests().release(r);
  }
  if (closed_) return;
  if (pump_at_head_ && dispatched_ == 0 && !queue_.empty()) {
    pump_at_head_ = false;
    pump();
  }
  if (closing_) maybe_finish_close();
  if (read_paused_) check_pipeline();
}

void ClientConn::queue_output(std::string_view bytes) {
  if (closed_) return;
  out_.append(bytes);
  mark_dirty();
  const size_t pending = out_.size() + stream_.unsent();
  if (pending > server_.config().max_client_output_bytes) {
    spdlog::warn("client {} ({}): closed: {} bytes of replies unsent, over max_client_output_bytes", id_, peer(),
                 pending);
    close();
  }
}

// As Redis: OFF drops every reply until ON, whose own +OK is sent; SKIP drops the
// next command's. Confirmations of (un)subscribes are pushes, sent whatever it says.
void ClientConn::gated_output(const Request* r, std::string_view bytes) {
  const bool skipped = reply_skip_;  // this is the command a SKIP named
  reply_skip_ = false;
  switch (r->reply_switch) {
    case ReplySwitch::On:
      reply_off_ = false;
      break;
    case ReplySwitch::Off:
      reply_off_ = true;
      break;
    case ReplySwitch::Skip:
      reply_skip_ = !reply_off_;
      break;
    case ReplySwitch::None:
      break;
  }
  if (r->reply_switch != ReplySwitch::None) --reply_switches_;
  reply_gated_ = reply_off_ || reply_skip_ || reply_switches_ != 0;
  if (confirmed_by_pushes(r->cmd) || r->reply_switch == ReplySwitch::On || (!skipped && !reply_off_))
    queue_output(bytes);
}

ClientConn::Footprint ClientConn::footprint() const {
  Footprint f;
  f.query = in_.size();
  f.query_free = in_.capacity() - in_.size();
  for (size_t i = 0; i < queue_.size(); ++i)
    for (auto a : queue_[i]->argv) f.argv += a.size();
  f.reply_buffer = out_.capacity();
  f.reply_pending = out_.size();
  f.unsent = stream_.unsent();
  return f;
}

void ClientConn::mark_dirty() {
  if (dirty_ || closed_) return;
  dirty_ = true;
  server_.mark_dirty(this);
}

// A client that pipelines more than max_pipeline requests waits (it is not read)
// until its backlog halves: its memory in the proxy stays bounded.
void ClientConn::check_pipeline() {
  if (closed_) return;
  const uint32_t limit = server_.config().max_pipeline;
  if (!read_paused_ && queue_.size() >= limit) {
    stream_.pause_reading();
    read_paused_ = true;
    ++server_.stats().pipeline_pauses;
  } else if (read_paused_ && queue_.size() <= limit / 2) {
    read_paused_ = false;
    stream_.resume_reading();
  }
}

void ClientConn::flush() {
  dirty_ = false;
  retired_subscriber_.reset();
  if (closed_) return;
  if (!out_.empty()) {
    server_.stats().net_output_bytes += out_.size();
    stream_.write(out_);  // over TLS before the handshake is done, out_ waits for it
  }
  if (closing_) maybe_finish_close();
}

void ClientConn::on_stream_drained() {
  if (closing_) maybe_finish_close();
}

void ClientConn::feed_monitor(std::string_view line) {
  if (closing_ || reply_off_) return;  // as Redis: a monitor's lines are replies, which OFF silences
  queue_output(line);
}

void ClientConn::refuse(std::string_view error) {
  resp::Buffer reply;
  resp::add_error(reply, error);
  closing_ = true;
  queue_output(reply.view());
}

SubscriberConn& ClientConn::subscriber() {
  if (!subscriber_) subscriber_ = std::make_unique<SubscriberConn>(server_, *this, resp3_);
  return *subscriber_;
}

NotificationRelay& ClientConn::notification_relay() {
  if (!relay_) relay_ = std::make_unique<NotificationRelay>(server_, *this, resp3_);
  return *relay_;
}

void ClientConn::await_confirmations(Request* req, uint32_t frames, uint64_t relay_mark) {
  pubsub_waiting_.push_back({req, frames, relay_mark});  // not done until they come (freed with the client if it goes first)
}

bool ClientConn::relay_caught_up(uint64_t mark) const {
  return mark == 0 || relay_ == nullptr || relay_->caught_up(mark);
}

void ClientConn::relay_progress() {
  if (!closed_) release_confirmed();
}

void ClientConn::push(std::string_view frame) {
  if (closed_) return;
  pubsub::Confirmation c;
  const bool confirms = pubsub::confirmation_of(frame, c);
  if (confirms && !c.name.empty()) {
    if (c.subscribed) subscriptions_ += subscribed_[c.kind].insert(c.name).second ? 1 : 0;
    else subscriptions_ -= subscribed_[c.kind].erase(c.name);
  }
  if (pubsub_waiting_.empty()) {  // a message: at once
    queue_output(frame);
    mark_dirty();
    return;
  }
  // One (un)subscribe waits at a time: the next is sent once it is done (route_pubsub).
  Awaiting& w = pubsub_waiting_.front();
  if (frame[0] == '-' || frame[0] == '!') {  // the main server refused it (NOPERM, an unknown command): that is the answer
    w.req->reply.clear();
    w.req->reply.append(frame);
    w.frames = 0;
    w.relay_mark = 0;
  } else {
    w.req->reply.append(frame);
    if (confirms && w.frames > 0) --w.frames;
  }
  release_confirmed();
}

// What waited for its confirmations and has them all goes, in order; what waited for
// it goes now too (its reply and frames are written in order).
void ClientConn::release_confirmed() {
  bool any = false;
  while (!pubsub_waiting_.empty() && pubsub_waiting_.front().frames == 0 &&
         relay_caught_up(pubsub_waiting_.front().relay_mark)) {
    pubsub_waiting_.front().req->done = true;
    pubsub_waiting_.pop_front();
    any = true;
  }
  if (any) pump();
}

void ClientConn::close_after_replies() {
  closing_ = true;
  maybe_finish_close();
}

void ClientConn::maybe_finish_close() {
  if (closed_ || !queue_.empty() || !out_.empty() || stream_.unsent() != 0) return;
  close();
}

void ClientConn::close() {
  if (closed_) return;
  closed_ = true;
  stream_.close();
  server_.leases().drop(this);
  server_.client_closed(this);
}

}  // namespace headroom::proxy
