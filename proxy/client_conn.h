// One client connection, on net::Stream: frames requests, keeps them in queue_ in
// arrival order, hands them to the Router in that order, and writes replies from the
// head of queue_ as they complete (see the picture in request.h).
//
// Closing: close() shuts the socket at once and the Server deletes the object at the
// end of the loop turn (never inside one of its own callbacks); until then requests
// still in flight may find their client closed and drop their replies.
#pragma once

#include <cstdint>
#include <string>
#include <memory>
#include <string_view>
#include <unordered_set>

#include "net/stream.h"
#include "proxy/leases.h"
#include "proxy/request.h"
#include "proxy/notification_relay.h"
#include "proxy/subscriber_conn.h"
#include "proxy/transaction.h"
#include "resp/buffer.h"
#include "resp/request_framer.h"
#include "resp/ring.h"

namespace headroom::proxy {

class Server;

class ClientConn final : private net::Stream::Owner {
 public:
  ClientConn(Server& server, uint64_t id);
  ~ClientConn();
  ClientConn(const ClientConn&) = delete;
  ClientConn& operator=(const ClientConn&) = delete;

  // Accepts the pending connection on `listener` and starts reading; over TLS when
  // `tls` is set. false on failure (then close() it).
  bool accept(uv_stream_t* listener, const net::TlsContext* tls);

  uint64_t id() const { return id_; }
  const std::string& name() const { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  bool authenticated() const { return authenticated_; }
  // HELLO 3: this client speaks RESP3 (its commands go on RESP3 connections).
  bool resp3() const { return resp3_; }
  void set_resp3(bool on) { resp3_ = on; }
  void set_authenticated(bool a) { authenticated_ = a; }
  const std::string& peer() const { return stream_.peer(); }
  Transaction& transaction() { return transaction_; }
  Lease& lease() { return lease_; }
  const Lease& lease() const { return lease_; }
  // The leased connection is ready (a request waits for it), or lost.
  void lease_ready() { pump(); }
  void lease_lost() {
    lease_.lost = true;
    pump();
  }
  bool closed() const { return closed_; }

  // A request that waited (placement) may now go: dispatch queued requests in order.
  void pump();
  bool is_head(const Request* r) const { return !queue_.empty() && queue_.front() == r; }
  // The first request not dispatched waits to be the head (HELLO): pumped once it is.
  void pump_at_head() { pump_at_head_ = true; }
  // A request of this client completed: write every completed reply at the head.
  void request_done() { write_ready_replies(); }
  // The head of queue_ is `req` and its reply is `reply`: write it without a copy
  // into the request. Returns false when `req` is not the head.
  bool deliver_head(Request* req, std::string_view reply);

  // Writes what out_ holds; called once per loop turn for a client marked dirty.
  void flush();

  // Pub/sub (proxy/subscriber_conn.h). The client's connection to the main server,
  // opened on its first (un)subscribe.
  SubscriberConn& subscriber();
  // A frame from it: held in the (un)subscribe request waiting for its confirmations
  // (so replies and frames keep their order), else written at once.
  void push(std::string_view frame);
  // `req` is answered by `frames` confirmations (one per channel named, or per
  // channel subscribed for an UNSUBSCRIBE of all).
  // A subscription that goes to the nodes too (`relay_mark`, NotificationRelay::on_command)
  // is confirmed once they have subscribed as well: no event is missed after the reply.
  void await_confirmations(Request* req, uint32_t frames, uint64_t relay_mark = 0);
  // The relay's nodes confirmed more (or one went down): what waited for them may go.
  void relay_progress();
  // Channels (kind 0), patterns (1) and shard channels (2) subscribed to.
  size_t subscriptions(int kind) const { return subscribed_[kind].size(); }
  // Whether the main server has confirmed this subscription (and not its end).
  bool subscribed_to(int kind, std::string_view name) const { return subscribed_[kind].contains(name); }
  // Keyspace notifications from every node (proxy/notification_relay.h): made on the
  // first subscription that names them; nullptr until then.
  NotificationRelay& notification_relay();
  NotificationRelay* notification_relay_if_any() { return relay_.get(); }
  // A blocking command waits, or an (un)subscribe for its confirmations: nothing else
  // of the client's goes meanwhile (pumped when it is over).
  bool dispatch_held() const { return lease_.blocking || !pubsub_waiting_.empty(); }
  // RESP2's subscribed state: only (un)subscribe, PING, QUIT and RESET are allowed.
  bool in_subscribed_mode() const { return subscriptions_ != 0 && !resp3_; }
  bool subscribed() const { return subscriptions_ != 0; }
  bool has_subscriber() const { return subscriber_ != nullptr; }
  // None subscribed: it goes at the end of the loop turn (this may run inside its
  // own callback), and a later subscribe opens another.
  void drop_subscriber() {
    retired_subscriber_ = std::move(subscriber_);
    mark_dirty();
  }

  // MONITOR: queues one line of another client's command.
  void feed_monitor(std::string_view line);

  // Answers `error` and closes, reading nothing (max_clients).
  void refuse(std::string_view error);
  // Stops taking requests; closes once every queued reply has been written (QUIT,
  // a protocol error, a graceful shutdown).
  void close_after_replies();
  // Closes now; queued requests become orphans.
  void close();

  bool idle() const { return queue_.empty() && out_.empty() && stream_.unsent() == 0; }
  // Loop time (ms) of the last bytes read from this client.
  uint64_t last_read_ms() const { return last_read_ms_; }

  // --- What CLIENT LIST and CLIENT INFO show (proxy/client_commands.cpp).
  uint64_t connected_ms() const { return connected_ms_; }  // loop time of the accept
  // The row of the last command looked up (nullptr: none yet, or an unknown one), as
  // Redis's lastcmd. Set for every request: one store.
  const resp::CommandInfo* last_command() const { return last_command_; }
  void set_last_command(const resp::CommandInfo* cmd) { last_command_ = cmd; }
  std::string local_address() const { return stream_.local_address(); }
  int fd() const { return stream_.fd(); }
  const Transaction& transaction() const { return transaction_; }
  bool closing() const { return closing_; }
  bool reading() const { return !read_paused_ && !closing_ && !closed_; }
  // Bytes held for this client, in the fields Redis reports them in.
  struct Footprint {
    size_t query = 0, query_free = 0;  // input read and not yet consumed; room left in its buffer
    size_t argv = 0;                   // arguments of its requests not yet answered
    size_t reply_buffer = 0, reply_pending = 0;  // out_'s capacity; replies in it not yet written
    size_t unsent = 0;                 // written, not yet taken by the kernel
  };
  Footprint footprint() const;
  // CLIENT NO-EVICT: recorded and shown; headroom evicts no client.
  bool no_evict() const { return no_evict_; }
  void set_no_evict(bool on) { no_evict_ = on; }
  // CLIENT PAUSE holds its next request (Server::held_by_pause).
  bool pause_held() const { return pause_held_; }
  void set_pause_held(bool on) { pause_held_ = on; }

  // CLIENT REPLY: `req` (dispatched) switches this client's replies when its own
  // reply is written, so the switch falls where Redis has it in the reply order
  // however the requests around it complete.
  void reply_switch_dispatched() {
    ++reply_switches_;
    reply_gated_ = true;
  }

 private:
  // net::Stream::Owner
  void on_stream_open() override { mark_dirty(); }  // TLS: replies queued meanwhile go now
  void on_stream_data(size_t n) override;
  void on_stream_drained() override;
  void on_stream_closed(std::string_view why) override;

  void frame_requests();
  void write_ready_replies();
  // A request's reply, at the head: queued for the client unless CLIENT REPLY says
  // otherwise. The common case is one predictable branch.
  void output_reply(const Request* r, std::string_view bytes) {
    if (reply_gated_) [[unlikely]] {
      gated_output(r, bytes);
      return;
    }
    queue_output(bytes);
  }
  void gated_output(const Request* r, std::string_view bytes);
  // Appends a reply for the client; over max_client_output_bytes of unsent replies
  // the client is closed, as Redis's client-output-buffer-limit closes it.
  void queue_output(std::string_view bytes);
  void check_pipeline();
  void mark_dirty();
  void maybe_finish_close();

  Server& server_;
  uint64_t id_;
  std::string name_;
  resp::Buffer in_;
  net::Stream stream_;
  resp::RequestFramer framer_;
  resp::Ring<Request*> queue_;   // requests not yet answered, in arrival order
  size_t dispatched_ = 0;        // queue_'s first N requests have been dispatched
  resp::Buffer out_;             // replies not yet handed to the stream
  Transaction transaction_;      // MULTI ... EXEC, as queued so far
  Lease lease_;                  // a connection of its own to one node (WATCH)
  std::unique_ptr<SubscriberConn> subscriber_;
  std::unique_ptr<SubscriberConn> retired_subscriber_;  // freed at the next flush
  std::unique_ptr<NotificationRelay> relay_;
  struct Awaiting {
    Request* req;
    uint32_t frames;      // the main server's confirmations still to come
    uint64_t relay_mark;  // the notification relay's nodes must have confirmed this far (0: nothing relayed)
  };
  bool relay_caught_up(uint64_t mark) const;
  void release_confirmed();
  resp::Ring<Awaiting> pubsub_waiting_;                // (un)subscribes awaiting confirmations
  // Looked up by string_view (a relayed message's channel), without a copy.
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_set<std::string, NameHash, std::equal_to<>> subscribed_[3];  // channels, patterns, shard channels
  size_t subscriptions_ = 0;                           // in all three
  uint64_t last_read_ms_ = 0;
  uint64_t connected_ms_ = 0;
  uint64_t read_ns_ = 0;  // uv_hrtime of the last read
  const resp::CommandInfo* last_command_ = nullptr;
  uint32_t reply_switches_ = 0;  // CLIENT REPLY requests dispatched, their replies not yet written
  bool reply_gated_ = false;     // reply_off_, reply_skip_ or reply_switches_: output_reply's slow path
  bool reply_off_ = false;       // CLIENT REPLY OFF
  bool reply_skip_ = false;      // CLIENT REPLY SKIP: the next reply is dropped
  bool authenticated_ = false;
  bool resp3_ = false;
  bool pump_at_head_ = false;
  bool read_paused_ = false;     // by max_pipeline
  bool closing_ = false;         // no more requests; close when replies are out
  bool closed_ = false;
  bool dirty_ = false;
  bool no_evict_ = false;
  bool pause_held_ = false;

  friend class Server;  // orphans the queue when it deletes the client
};

}  // namespace headroom::proxy
