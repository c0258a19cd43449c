#include "balancer/main_store.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdio>
#include <random>

#include "balancer/directory_scripts.h"
#include "net/handle.h"
#include "resp/reply_writer.h"

namespace headroom::balancer {

using scripts::Script;

namespace {

// Placements per script call, and script calls in flight: a burst of new keys is
// placed in a few calls rather than one per key (the main server's per-call cost
// bounded new-key writes at ~134k/s), while a lone key still goes at once.
constexpr size_t kMaxBatch = 256;
constexpr uint32_t kMaxBatchesInFlight = 3;
constexpr size_t kMaxSpareBatches = 4;
constexpr std::string_view kPlacementCutOff = "ERR main server unavailable: cannot place new keys";

constexpr uint32_t kLoadWindow = 256;      // bucket loads in flight
constexpr uint64_t kLoadRetryMs = 1000;    // after a load that failed
constexpr uint64_t kHeartbeatMs = 200;     // registration and acknowledgements

using scripts::kLayout;
using scripts::kUnversionedLayout;

std::string random_origin() {
  std::random_device rd;
  uint64_t v = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(uv_hrtime());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return std::string(buf, 16);
}

bool parse_u64(std::string_view s, uint64_t& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}
}  // namespace

MainStore::MainStore(uv_loop_t* loop, const conf::BackendConfig& main, NodeRegistry& nodes, Directory& dir,
                     const std::unique_ptr<net::TlsContext>& tls, ControlTimeouts timeouts)
    : loop_(loop), config_(main), nodes_(nodes), dir_(dir), origin_(random_origin()), layout_(kLayout),
      loaded_at_(kBuckets, 0) {
  cmd_ = std::make_unique<ControlConn>(loop_, "main " + main.name, main.address, main.password, tls, timeouts);
  cmd_->set_client_name("hr-directory");
  holds_ = std::make_unique<Holds>(*cmd_);
  sub_ = std::make_unique<ControlConn>(loop_, "main " + main.name + " (events)", main.address, main.password, tls,
                                       timeouts);
  sub_->set_client_name("hr-directory-events");
  retry_timer_ = net::new_handle(loop_, this, uv_timer_init);
  heartbeat_timer_ = net::new_handle(loop_, this, uv_timer_init);
}

MainStore::~MainStore() {
  stop();
  net::close_and_delete(retry_timer_);
  net::close_and_delete(heartbeat_timer_);
}

uint32_t MainStore::bucket_of(std::string_view dir_key) {
  return static_cast<uint32_t>(stable_hash(dir_key) % kBuckets);
}

std::string MainStore::bucket_name(std::string_view dir_key) { return bucket_name(bucket_of(dir_key)); }

std::string MainStore::bucket_name(uint32_t bucket) {
  char name[24] = "hr:dir:";  // short enough for std::string's inline storage: no allocation
  auto r = std::to_chars(name + 7, name + sizeof name, bucket);
  return std::string(name, r.ptr);
}

void MainStore::encode_eval(resp::Buffer& out, size_t script, std::initializer_list<std::string_view> keys,
                            std::initializer_list<std::string_view> args) {
  scripts::encode(out, static_cast<Script>(script), std::span<const std::string_view>(keys.begin(), keys.size()),
                  std::span<const std::string_view>(args.begin(), args.size()));
}

void MainStore::start(std::function<void()> on_loaded, std::function<void(const std::string&)> on_fatal) {
  on_loaded_ = std::move(on_loaded);
  on_fatal_ = std::move(on_fatal);
  // Subscribed first, loaded second, every time either connection comes back: a
  // change made during the load arrives as a message, and one made while either was
  // down is in the load.
  sub_->start([this](bool up) {
    subscribed_ = false;
    if (up) {
      sub_->subscribe({kEventsChannel}, [this](redisReply* r) { on_event(r); });
    } else {
      stream_lost("the subscription to the change stream was lost");
    }
  });
  cmd_->start([this](bool up) { on_cmd_state(up); });
  uv_timer_start(heartbeat_timer_, [](uv_timer_t* t) { static_cast<MainStore*>(t->data)->heartbeat(); },
                 kHeartbeatMs, kHeartbeatMs);
}

void MainStore::on_cmd_state(bool up) {
  if (up) {
    scripts::load_all(*cmd_);  // first on the connection: everything after finds the scripts
    holds_->resync(origin_);   // what was sent while it was down was dropped
    start_load();
    return;
  }
  current_ = false;
  beat_in_flight_ = false;
  fail_placements();
}

void MainStore::stop() {
  uv_timer_stop(retry_timer_);
  uv_timer_stop(heartbeat_timer_);
  cmd_->stop();
  sub_->stop();
  fail_placements();  // cmd_ reports no state change when stopped
}

void MainStore::leave(std::function<void()> done) {
  leaving_ = true;
  uv_timer_stop(heartbeat_timer_);
  if (!registered_ || !cmd_->up()) {
    done();
    return;
  }
  registered_ = false;
  resp::Buffer call;
  encode_eval(call, static_cast<size_t>(Script::Heartbeat), {}, {origin_, "0", "leave"});
  ++sent_;
  if (!cmd_->command_encoded(call.view(), [done](redisReply*) { done(); })) done();
}

// The connection is gone: batches in flight got a null reply already; whatever is
// still queued fails here.
void MainStore::fail_placements() {
  // Answered batches keep their answers (the placements were made): their sync
  // round trip failed with the connection, so they go now.
  for (auto& a : answered_) a.synced = true;
  release_synced();
  auto failed = std::move(batches_);
  batches_.clear();
  batches_in_flight_ = 0;
  for (auto& b : failed)
    for (auto& item : b.items) item.fn(PlaceResult{-1, 0, std::string(kPlacementCutOff)});
}

// --- loading ---------------------------------------------------------------------

void MainStore::start_load() {
  if (!cmd_->up() || !subscribed_) return;  // the other one's arrival starts it
  current_ = false;
  const uint64_t gen = ++load_generation_;
  load_next_bucket_ = 0;
  load_in_flight_ = 0;
  removed_during_load_.clear();
  unknown_nodes_.clear();
  ++sent_;
  // Up (checked above): sent.
  (void)cmd_->command({"EVALSHA", scripts::sha(Script::Layout), "1", scripts::kLayoutKey, layout_, kUnversionedLayout},
                      [this, gen](redisReply* r) {
                        if (gen != load_generation_ || r == nullptr) return;  // superseded, or the connection is gone
                        if (r->type == REDIS_REPLY_ERROR) {
                          retry_load("checking the directory's layout answered " + std::string(reply_text(r)));
                          return;
                        }
                        std::string_view theirs = r->type == REDIS_REPLY_STRING ? reply_text(r) : "unreadable";
                        if (theirs != layout_) {
                          if (on_fatal_)
                            on_fatal_("the directory on main server " + config_.name + " has layout '" +
                                      std::string(theirs) + "' and this headroom reads '" + layout_ +
                                      "': it would not find the keys placed there");
                          return;
                        }
                        dir_.begin_epoch();
                        load_next();
                      });
}

// A load that cannot complete: start over in a while.
void MainStore::retry_load(const std::string& why) {
  spdlog::warn("directory load failed: {}; retrying in {} ms", why, kLoadRetryMs);
  ++load_generation_;
  load_in_flight_ = 0;
  uv_timer_start(retry_timer_, [](uv_timer_t* t) { static_cast<MainStore*>(t->data)->start_load(); }, kLoadRetryMs,
                 0);
}

void MainStore::load_next() {
  const uint64_t gen = load_generation_;
  while (load_in_flight_ < kLoadWindow && load_next_bucket_ < kBuckets) {
    const uint32_t bucket = load_next_bucket_++;
    const std::string name = bucket_name(bucket);
    ++sent_;
    bool sent = cmd_->command({"EVALSHA", scripts::sha(Script::LoadBucket), "1", name},
                              [this, gen, bucket](redisReply* r) {
                                if (gen != load_generation_) return;  // a newer load took over
                                --load_in_flight_;
                                if (r == nullptr) return;  // connection lost; a new load starts on reconnect
                                on_bucket(bucket, r);
                              });
    if (!sent) return;
    ++load_in_flight_;
  }
}

void MainStore::on_bucket(uint32_t bucket, redisReply* r) {
  if (r->type == REDIS_REPLY_ERROR || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
      r->element[0]->type != REDIS_REPLY_INTEGER || r->element[2]->type != REDIS_REPLY_ARRAY) {
    // A bucket that does not load makes the whole load worthless: its end would drop
    // every entry of that bucket.
    retry_load(r->type == REDIS_REPLY_ERROR ? "a bucket load answered " + std::string(reply_text(r))
                                            : std::string("a bucket load gave an unexpected reply"));
    return;
  }
  const auto at = static_cast<uint64_t>(r->element[0]->integer);
  if (at < loaded_at_[bucket]) {
    // Older than this bucket's last load: the main server went back.
    went_back("a bucket loaded at " + std::to_string(at) + " was loaded at " + std::to_string(loaded_at_[bucket]) +
              " before");
    return;
  }
  if (r->element[1]->type == REDIS_REPLY_INTEGER) dir_.flushed(static_cast<uint64_t>(r->element[1]->integer));
  const redisReply* fields = r->element[2];
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view key = reply_text(fields->element[i]);
    scripts::EntryValue ev;
    if (!scripts::parse_entry_value(reply_text(fields->element[i + 1]), ev)) continue;
    auto node = nodes_.find(ev.node);
    if (!node) {
      ++unknown_nodes_[std::string(ev.node)];
      continue;
    }
    if (!removed_during_load_.empty()) {
      auto it = removed_during_load_.find(std::string(key));
      if (it != removed_during_load_.end() && it->second > at) continue;  // removed after this snapshot
    }
    dir_.apply(key, *node, ev.version,
               !ev.moving_to.empty() ? EntryState::Moving
               : ev.retiring         ? EntryState::Retiring
                                     : EntryState::Live);
  }
  loaded_at_[bucket] = std::max(loaded_at_[bucket], at);
  max_loaded_at_ = std::max(max_loaded_at_, at);
  if (load_next_bucket_ < kBuckets) load_next();
  else if (load_in_flight_ == 0) finish_load();
}

void MainStore::finish_load() {
  if (!unknown_nodes_.empty()) {
    std::string names;
    size_t keys = 0;
    for (const auto& [name, n] : unknown_nodes_) {
      names += (names.empty() ? "'" : ", '") + name + "'";
      keys += n;
    }
    std::string why = "the directory names node " + names + " for " + std::to_string(keys) +
                      " keys, and the config has no such node: put it back in the config, or drain it first";
    if (!loaded_) {
      if (on_fatal_) on_fatal_(why);
      return;
    }
    spdlog::error("{}: keys this proxy has not cached are not served until its config names it", why);
  }
  unknown_node_entries_ = !unknown_nodes_.empty();
  size_t gone = dir_.end_epoch();
  removed_during_load_.clear();
  current_ = subscribed_ && cmd_->up() && back_check_ == 0 && !unknown_node_entries_;
  spdlog::info("directory loaded: {} entries{} (change stream at {})", dir_.size(),
               gone ? " (" + std::to_string(gone) + " removed meanwhile dropped)" : std::string(), applied_seq_);
  if (tracker_ != nullptr) {
    // The load may hold changes no message brought (published while the stream was
    // down: a move's M, a retirement): nothing further is acknowledged until every
    // write sent before now is answered, as after a message.
    Checkpoint c;
    c.seq = acked_reported_ + 1;
    tracker_->sent_counts(c.sent);
    checkpoints_.push_front(std::move(c));
  }
  beat_now();  // registers, or confirms the registration
  if (!loaded_) {
    loaded_ = true;
    if (on_loaded_) on_loaded_();
  }
}

// --- the change stream -------------------------------------------------------------

void MainStore::nodes_added() {
  if (!unknown_node_entries_) return;
  unknown_node_entries_ = false;
  stream_lost("the config now names more nodes");
  start_load();
}

void MainStore::stream_lost(const std::string& why) {
  if (current_) spdlog::warn("directory: {}; reloading", why);
  current_ = false;
  back_check_ = 0;
  applied_seq_ = 0;
  checkpoints_.clear();
  own_batches_.clear();
}

// The main server's directory was flushed (or restored) behind headroom's back:
// nothing cached can be trusted against its new numbers.
void MainStore::went_back(const std::string& what) {
  spdlog::warn("directory: the main server's directory went back ({}: flushed or restored?); reloading it all", what);
  dir_.clear();
  std::fill(loaded_at_.begin(), loaded_at_.end(), 0);
  max_loaded_at_ = 0;
  stream_lost("the directory went back");
  if (on_change_) on_change_('X', 0, {}, 0);
  start_load();
}

void MainStore::check_not_back(uint64_t seen) {
  if (back_check_ != 0) return;
  back_check_ = ++back_checks_;
  current_ = false;  // until it is known whether the message is late or the directory new
  ++sent_;
  bool sent = cmd_->command({"GET", scripts::kSeqKey}, [this, check = back_check_, seen](redisReply* r) {
    if (check != back_check_) return;  // a reload started meanwhile
    back_check_ = 0;
    uint64_t now = 0;
    if (r == nullptr) return;  // the connection is gone: its reconnection reloads
    if (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_STRING && parse_u64(reply_text(r), now) && now < seen)) {
      went_back("its change stream is at " + std::to_string(now) + ", below the " + std::to_string(seen) +
                " the last load saw");
      return;
    }
    // Late: current again, unless a load is still under way (its end says).
    if (load_next_bucket_ >= kBuckets && load_in_flight_ == 0)
      current_ = subscribed_ && cmd_->up() && !unknown_node_entries_;
  });
  if (!sent) back_check_ = 0;  // the connection is down: its reconnection reloads
}

void MainStore::on_event(redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
  std::string_view kind = reply_text(r->element[0]);
  if (kind == "subscribe") {
    subscribed_ = true;
    start_load();
    return;
  }
  if (kind != "message" || r->element[2]->type != REDIS_REPLY_STRING) return;
  std::string_view msg = reply_text(r->element[2]);
  if (!msg.empty() && msg[0] == 'F') ++flushes_received_;
  // "<type><seq> <origin>\n<entries>"
  size_t sp = msg.find(' ');
  size_t nl = msg.find('\n');
  uint64_t seq = 0;
  if (msg.size() < 2 || sp == std::string_view::npos || nl == std::string_view::npos || nl < sp ||
      !parse_u64(msg.substr(1, sp - 1), seq)) {
    spdlog::error("directory: unreadable change message; reloading");
    stream_lost("an unreadable change message");
    start_load();
    return;
  }
  if (applied_seq_ != 0 && seq <= applied_seq_) {
    went_back("the change stream went from " + std::to_string(applied_seq_) + " to " + std::to_string(seq));
    applied_seq_ = seq;
  } else if (applied_seq_ == 0 && seq <= max_loaded_at_) {
    // The first message since the load, and the load was at least as new: either it
    // was published during the load and arrived late (the load has it), or the main
    // server went back and numbers from 1 again. Its sequence number now tells.
    check_not_back(max_loaded_at_);
  } else if (applied_seq_ != 0 && seq != applied_seq_ + 1) {
    // A message was lost (the subscription dropped and came back between two): the
    // cache may lack a change, so it is loaded again.
    spdlog::warn("directory: change stream jumped from {} to {}; reloading", applied_seq_, seq);
    stream_lost("a gap in the change stream");
    applied_seq_ = seq;
    start_load();
  }
  applied_seq_ = seq;
  const char type = msg[0];
  std::string_view entries = msg.substr(nl + 1);
  // "<origin>", or for a placement "<origin> <node>=<bytes>,..."
  std::string_view origin = msg.substr(sp + 1, nl - sp - 1);
  if (type == 'P') {
    size_t space = origin.find(' ');
    std::string_view sizes = space == std::string_view::npos ? std::string_view() : origin.substr(space + 1);
    origin = origin.substr(0, space);
    if (origin != origin_ && ledger_ != nullptr) count_placed_elsewhere(sizes);
  }
  if (type == 'P' && !own_batches_.empty()) {
    // A placement of ours whose reply the cache took already: the message holds
    // the same entries, so they are not applied again (the common case of a burst
    // of new keys: half the work of following the stream).
    while (!own_batches_.empty() && own_batches_.front() < seq) own_batches_.pop_front();
    if (!own_batches_.empty() && own_batches_.front() == seq && origin == origin_) {
      own_batches_.pop_front();
      return;
    }
  }
  switch (type) {
    case 'P':
    case 'R':
    case 'D':
    case 'M':
      apply_entries(type, seq, entries);
      break;
    case 'F':
      dir_.flushed(seq);
      if (on_change_) on_change_('F', seq, {}, 0);
      break;
    default:
      spdlog::warn("directory: change message of unknown type '{}'", type);
      return;
  }
  if ((type == 'R' || type == 'F' || type == 'M') && tracker_ != nullptr) {
    // Acknowledged once every write this proxy sent before it has been answered.
    Checkpoint c;
    c.seq = seq;
    tracker_->sent_counts(c.sent);
    checkpoints_.push_back(std::move(c));
  }
}

// Another proxy's placement: "<node>=<bytes>,..." (empty from a proxy that does not say).
void MainStore::count_placed_elsewhere(std::string_view sizes) {
  while (!sizes.empty()) {
    size_t comma = sizes.find(',');
    std::string_view one = sizes.substr(0, comma);
    sizes = comma == std::string_view::npos ? std::string_view() : sizes.substr(comma + 1);
    size_t eq = one.find('=');
    uint64_t bytes = 0;
    if (eq == std::string_view::npos || !parse_u64(one.substr(eq + 1), bytes)) continue;
    if (auto node = nodes_.find(one.substr(0, eq))) ledger_->placed_elsewhere(*node, bytes);
  }
}

// A message's entries: "<key length>:<node>\n<key>" each.
void MainStore::apply_entries(char kind, uint64_t seq, std::string_view entries) {
  while (!entries.empty()) {
    size_t colon = entries.find(':');
    size_t nl = entries.find('\n');
    if (colon == std::string_view::npos || nl == std::string_view::npos || nl < colon) return;
    uint64_t len = 0;
    if (!parse_u64(entries.substr(0, colon), len) || len > entries.size() - nl - 1) return;
    std::string_view node_name = entries.substr(colon + 1, nl - colon - 1);
    std::string_view key = entries.substr(nl + 1, len);
    entries.remove_prefix(nl + 1 + len);
    // The last load of its bucket has it (only a message that old needs its bucket).
    if (seq <= max_loaded_at_ && seq <= loaded_at_[bucket_of(key)]) continue;
    auto node = nodes_.find(node_name);
    if (!node) {
      // Another proxy's config has a node this one's lacks (a reload not made here
      // yet): a key there would read as absent, so absence is unknown until then.
      if (!unknown_node_entries_)
        spdlog::error("directory: an entry names node '{}', which this proxy's config lacks: keys it has not "
                      "cached are not served until its config is reloaded with that node", node_name);
      unknown_node_entries_ = true;
      current_ = false;
      continue;
    }
    if (kind == 'D') {
      dir_.erase(key, seq);
      if (load_in_flight_ > 0 || load_next_bucket_ < kBuckets) removed_during_load_[std::string(key)] = seq;
    } else {
      dir_.apply(key, *node, seq,
                 kind == 'R' ? EntryState::Retiring : kind == 'M' ? EntryState::Moving : EntryState::Live);
    }
    if (on_change_) on_change_(kind, seq, key, *node);
  }
}

// --- acknowledgements and registration ---------------------------------------------

// While the cache is not current (reloading, the stream lost), what was acknowledged
// before stands: the registration stays alive, and removals wait for this proxy.
uint64_t MainStore::acked_seq() const {
  if (!current_) return acked_reported_;
  if (checkpoints_.empty()) return applied_seq_;
  return checkpoints_.front().seq - 1;
}

void MainStore::check_acks() {
  bool advanced = false;
  while (!checkpoints_.empty() && (tracker_ == nullptr || tracker_->answered_all(checkpoints_.front().sent))) {
    checkpoints_.pop_front();
    advanced = true;
  }
  if (advanced) beat_now();  // the coordinator waits for this: tell it at once
}

void MainStore::heartbeat() {
  if (tracker_ != nullptr && !checkpoints_.empty()) check_acks();
  beat_now();
  if (registered_) holds_->tick(uv_now(loop_), origin_);
}

void MainStore::beat_now() {
  if (leaving_ || beat_in_flight_ || !cmd_->up() || !loaded_) return;
  if (!registered_ && !current_) return;  // a proxy joins once its load is complete
  const uint64_t acked = std::max(acked_reported_, acked_seq());
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof digits, acked);
  script_call_.clear();
  encode_eval(script_call_, static_cast<size_t>(Script::Heartbeat), {},
              {origin_, std::string_view(digits, static_cast<size_t>(r.ptr - digits)), registered_ ? "beat" : "join"});
  ++sent_;
  const std::string origin = origin_;
  beat_in_flight_ = cmd_->command_encoded(script_call_.view(), [this, origin](redisReply* reply) {
    beat_in_flight_ = false;
    if (reply == nullptr || origin != origin_) return;
    if ((reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) && reply_text(reply) == "GONE") {
      start_over("the main server no longer has this proxy's registration (the coordinator fenced it, or the main server lost its data)");
      return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      spdlog::warn("directory: heartbeat answered {}", reply_text(reply));
      return;
    }
    if (!registered_) {
      spdlog::info("directory: registered as proxy {}", origin_);
      holds_->registered(origin_);  // under this id: a new one after a fence, or the main server's restart
    }
    registered_ = true;
    // Acknowledgements that came while this beat was out (a move's barrier waits
    // for them) go now, not at the next heartbeat.
    if (acked_seq() > acked_reported_) beat_now();
  });
  if (beat_in_flight_) acked_reported_ = acked;
}

void MainStore::fenced(std::string_view origin) {
  if (origin == origin_) start_over("a data node holds this proxy's fence marker");
}

// This proxy was fenced (docs/directory.md, "Fencing"): what it holds may be stale.
// It forgets it, takes a new id (its data connections reconnect under it), and
// serves from the main server until its reload has completed.
void MainStore::start_over(const std::string& why) {
  std::string old = origin_;
  origin_ = random_origin();
  registered_ = false;
  acked_reported_ = 0;
  spdlog::warn("directory: {}: dropping the cache and reloading as proxy {} (was {})", why, origin_, old);
  dir_.clear();
  std::fill(loaded_at_.begin(), loaded_at_.end(), 0);
  max_loaded_at_ = 0;
  stream_lost(why);
  start_load();
}

// --- placement and retirement ------------------------------------------------------

bool MainStore::place(std::string_view dir_key, NodeIndex node, uint64_t bytes, PlaceFn fn) {
  if (!cmd_->up()) return false;
  Batch& b = filling_batch();
  b.items.push_back(
      {static_cast<uint32_t>(b.keys.size()), static_cast<uint32_t>(dir_key.size()), node, bytes, std::move(fn)});
  b.keys.append(dir_key);
  send_batches();
  return true;
}

// The batch new placements join: the last one, unless it is sent or full.
MainStore::Batch& MainStore::filling_batch() {
  if (batches_.size() > batches_in_flight_ && batches_.back().items.size() < kMaxBatch) return batches_.back();
  if (spare_batches_.empty()) {
    batches_.emplace_back();
  } else {
    batches_.push_back(std::move(spare_batches_.back()));
    spare_batches_.pop_back();
  }
  return batches_.back();
}

// Sends waiting batches while fewer than kMaxBatchesInFlight await their reply.
void MainStore::send_batches() {
  while (batches_in_flight_ < kMaxBatchesInFlight && batches_in_flight_ < batches_.size()) {
    const Batch& b = batches_[batches_in_flight_];
    const size_t n = b.items.size();
    // The message's entries, ready-made: the script only prefixes the sequence number
    // (building it in Lua cost the main server more than the placements themselves).
    event_.clear();
    for (const auto& item : b.items) {
      char digits[24];
      auto r = std::to_chars(digits, digits + sizeof digits, item.key_len);
      event_.append(digits, r.ptr);
      event_ += ':';
      event_ += nodes_[item.node].name();
      event_ += '\n';
      event_ += b.key(item);
    }
    // The message's header names the origin, then the batch's bytes per node for the
    // other proxies' ledgers: "<origin> <node>=<bytes>,...".
    node_bytes_.assign(nodes_.size(), 0);
    for (const auto& item : b.items) node_bytes_[item.node] += item.bytes;
    origin_arg_ = origin_;
    char sep = ' ';
    for (NodeIndex i = 0; i < node_bytes_.size(); ++i) {
      if (node_bytes_[i] == 0) continue;
      char digits[24];
      auto r = std::to_chars(digits, digits + sizeof digits, node_bytes_[i]);
      origin_arg_ += sep;
      origin_arg_ += nodes_[i].name();
      origin_arg_ += '=';
      origin_arg_.append(digits, r.ptr);
      sep = ',';
    }
    script_call_.clear();
    scripts::encode_head(script_call_, Script::Place, n, n + 5 + 2 * n);
    for (const auto& item : b.items) resp::add_bulk(script_call_, bucket_name(b.key(item)));
    resp::add_bulk(script_call_, kEventsChannel);
    resp::add_bulk(script_call_, origin_arg_);
    resp::add_bulk(script_call_, event_);
    resp::add_bulk(script_call_, scripts::kLayoutKey);
    resp::add_bulk(script_call_, layout_);
    for (const auto& item : b.items) {
      resp::add_bulk(script_call_, b.key(item));
      resp::add_bulk(script_call_, nodes_[item.node].name());
    }
    const uint64_t at = ++sent_;
    batches_[batches_in_flight_].sent_at = at;
    if (!cmd_->command_encoded(script_call_.view(), [this, at](redisReply* reply) { on_batch_reply(at, reply); }))
      return;  // not connected: cmd_'s state callback fails what waits
    ++batches_in_flight_;
  }
}

namespace {
// The script's reply: {seq, then i, node, version, changed for each key not placed
// as asked, i ascending}.
bool valid_placement_reply(const redisReply* r, size_t batch_size) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 4 != 0) return false;
  if (r->element[0]->type != REDIS_REPLY_INTEGER) return false;
  long long last = 0;
  for (size_t j = 1; j < r->elements; j += 4) {
    const redisReply* i = r->element[j];
    if (i->type != REDIS_REPLY_INTEGER || i->integer <= last || i->integer > static_cast<long long>(batch_size))
      return false;
    if (r->element[j + 1]->type != REDIS_REPLY_STRING || r->element[j + 2]->type != REDIS_REPLY_INTEGER) return false;
    last = i->integer;
  }
  return true;
}
}  // namespace

void MainStore::on_batch_reply(uint64_t sent_at, redisReply* r) {
  if (batches_.empty() || batches_.front().sent_at != sent_at) return;  // failed already
  Batch b = std::move(batches_.front());
  batches_.pop_front();
  --batches_in_flight_;

  std::string error;
  if (r == nullptr) {
    error = kPlacementCutOff;
  } else if (r->type == REDIS_REPLY_ERROR) {
    error = "ERR main server refused placement: " + std::string(reply_text(r));
  } else if (!valid_placement_reply(r, b.items.size())) {
    error = "ERR main server refused placement: unexpected reply";
  }
  const uint64_t seq = error.empty() ? static_cast<uint64_t>(r->element[0]->integer) : 0;
  // The cache takes the answer only while the change stream has not reached it: once
  // it has, the stream's message (and what came after) is in the cache already.
  const bool cache_it = error.empty() && applied_seq_ < seq;
  size_t next = 1;
  b.results.resize(b.items.size());
  for (size_t i = 0; i < b.items.size(); ++i) {
    auto& item = b.items[i];
    PlaceResult& res = b.results[i];
    res = PlaceResult{};
    if (!error.empty()) {
      res.error = error;
    } else if (next < r->elements && r->element[next]->integer == static_cast<long long>(i + 1)) {
      std::string_view name = reply_text(r->element[next + 1]);
      res.version = static_cast<uint64_t>(r->element[next + 2]->integer);
      next += 4;
      if (auto idx = nodes_.find(name)) res.node = *idx;
      else res.error = "ERR directory places this key on unknown node '" + std::string(name) + "'";
    } else {
      res.node = item.node;
      res.version = seq;
    }
    if (res.node >= 0 && cache_it) dir_.apply(b.key(item), static_cast<NodeIndex>(res.node), res.version, false);
  }
  if (cache_it) own_batches_.push_back(seq);
  if (!error.empty() || !cmd_->up()) {  // nothing was published: nothing to wait for
    b.synced = true;
    answered_.push_back(std::move(b));
    release_synced();
  } else {
    // The placements may not be used yet. The main server wrote this reply and the
    // placement's message to the other proxies in the same pass, in an order of its
    // own: a client told of the write at once could read the key through another
    // proxy before that proxy has the message. A command sent now is answered in a
    // later pass, after every write of this one: once it is, the message is on its
    // way to every proxy, ahead of anything the client can do next.
    const uint64_t id = b.sent_at;
    answered_.push_back(std::move(b));
    ++sent_;
    auto synced = [this, id](redisReply*) {
      for (auto& a : answered_)
        if (a.sent_at == id) a.synced = true;
      release_synced();
    };
    if (!cmd_->command({"PING"}, synced)) synced(nullptr);
  }
  if (cmd_->up()) send_batches();
}

// Answered batches go to their waiters in order, each once its round trip is done.
void MainStore::release_synced() {
  while (!answered_.empty() && answered_.front().synced) {
    Batch b = std::move(answered_.front());
    answered_.pop_front();
    // The waiters may place more keys meanwhile: those join later batches.
    for (size_t i = 0; i < b.items.size(); ++i) b.items[i].fn(b.results[i]);
    recycle(std::move(b));
  }
}

void MainStore::recycle(Batch&& b) {
  b.keys.clear();
  b.items.clear();
  b.results.clear();
  b.sent_at = 0;
  b.synced = false;
  if (spare_batches_.size() < kMaxSpareBatches) spare_batches_.push_back(std::move(b));
}

void MainStore::retire(std::string_view dir_key, NodeIndex node) {
  resp::Buffer call;
  const std::string bucket = bucket_name(dir_key);
  encode_eval(call, static_cast<size_t>(Script::Retire), {bucket},
              {kEventsChannel, origin_, dir_key, nodes_[node].name()});
  ++sent_;
  cmd_->post_encoded(call.view());
}

void MainStore::mark_flushed(std::function<void(std::string_view)> fn) {
  resp::Buffer call;
  encode_eval(call, static_cast<size_t>(Script::Flushed), {}, {kEventsChannel, origin_});
  ++sent_;
  bool sent = cmd_->command_encoded(call.view(), [fn](redisReply* r) {
    if (r == nullptr) fn("ERR main server unavailable: directory not flushed");
    else if (r->type == REDIS_REPLY_ERROR) fn(reply_text(r));
    else fn("");
  });
  if (!sent) fn("ERR main server unavailable: directory not flushed");
}

}  // namespace headroom::balancer
