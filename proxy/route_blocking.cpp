// Blocking calls (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
// BZMPOP, XREAD/XREADGROUP with BLOCK): each goes on a lease (proxy/leases.h), a
// connection of the client's own to its keys' node, so that it blocks nobody else;
// no request timeout applies to it (its own timeout is Redis's to honour). Its keys
// are placed if they have no entry (the producer's push then goes where the consumer
// waits) and held while it waits (balancer/holds.h), so no entry it waits on is
// removed. Keys on several nodes are CROSSNODE (waiting on each node and taking the
// first answer could pop on two). As in Redis, the client's later commands wait
// until the blocking one is answered.
//
// A client that leaves while blocked: Leases unblocks its connection (CLIENT UNBLOCK)
// instead of closing it, so that an element Redis popped for it just before still
// arrives; then it is given back where it was taken (the head of the list for BLPOP,
// the tail for BRPOP, the sorted set with its score for BZPOP*). BLMOVE and
// BRPOPLPUSH put the element in their destination, XREADGROUP in the group's pending
// list, and XREAD takes nothing: for those there is nothing to give back.
#include <spdlog/spdlog.h>

#include "balancer/directory.h"
#include "balancer/placement.h"
#include "proxy/backend_conn.h"
#include "proxy/client_conn.h"
#include "proxy/router.h"
#include "proxy/server.h"
#include "resp/ascii.h"
#include "resp/reply_framer.h"

namespace headroom::proxy {

namespace {

// How the element a blocking pop took goes back: the command that puts it where it
// was. Data about the pops, not routing: every other blocking command takes nothing
// that could be lost.
enum class GiveBack { None, ListHead, ListTail, ListByDirection, SortedSet, SortedSetMany };

GiveBack give_back_of(std::string_view name) {
  if (name == "blpop") return GiveBack::ListHead;
  if (name == "brpop") return GiveBack::ListTail;
  if (name == "blmpop") return GiveBack::ListByDirection;
  if (name == "bzpopmin" || name == "bzpopmax") return GiveBack::SortedSet;
  if (name == "bzmpop") return GiveBack::SortedSetMany;
  return GiveBack::None;
}

}  // namespace

bool Router::route_blocking(Request* req, int target) {
  ClientConn& client = *req->client;
  Lease& lease = client.lease();
  // Every key on one node first: the new ones are placed with the others.
  if (!place_new_keys(req)) return req->done;
  look_up_keys(req);
  for (int32_t n : req->key_nodes)
    if (n >= 0) target = n;  // one node (common_node checked), now that every key is placed
  NodeIndex node = 0;
  if (target >= 0) {
    node = static_cast<NodeIndex>(target);
  } else if (!any_node(node)) {  // keys that could not be placed: answered by the placement's error
    reply_error(req, "ERR no data node is available");
    return true;
  }
  if (lease.conn != nullptr && lease.node != node) {
    if (lease.ending) return false;  // the last lease's reply is on its way: Leases pumps
    reply_error(req, "CROSSNODE keys of '" + resp::to_lower(req->argv[0]) + "' live on node " +
                         server_.nodes()[node].name() + " and this connection watches keys on node " +
                         server_.nodes()[lease.node].name());
    return true;
  }
  if (lease.conn == nullptr) {
    // Its earlier commands to that node went on the shared connection: none may be
    // overtaken on the lease.
    if (!client.is_head(req)) {
      client.pump_at_head();
      return false;
    }
    std::string error;
    if (!server_.leases().open(&client, node, error)) {
      reply_error(req, error);
      return true;
    }
  }
  lease.ending = false;  // a lease that was ending (after an EXEC) serves this call too
  if (lease.lost) {
    reply_error(req, "ERR the connection to node " + server_.nodes()[node].name() + " for this blocking call was lost");
    server_.leases().end_when_idle(&client);
    return true;
  }
  if (!lease.conn->connected()) return false;  // lease_ready pumps
  forward_raw(req, node);
  if (req->fragments_pending == 0) return true;  // refused (answered with the reason)
  lease.blocking = true;
  for (const auto& k : req->keys) server_.main_store().hold(balancer::directory_key(req->argv[k.argv_index]));
  // Without a WATCH the lease is the call's alone: it ends with the reply.
  if (lease.watched.empty()) server_.leases().end_when_idle(&client);
  return true;
}

void Router::blocking_answered(Request* req, std::string_view reply) {
  for (const auto& k : req->keys) server_.main_store().release_hold(balancer::directory_key(req->argv[k.argv_index]));
  if (req->client != nullptr && !req->client->closed()) {
    req->client->lease().blocking = false;
    return;
  }
  // The client has gone (or is going, this turn): whatever the reply took goes back.
  if (reply.empty() || reply[0] != '*' || req->fragments.empty()) return;  // nil (timed out, unblocked), or an error
  const GiveBack how = give_back_of(req->cmd->name);
  if (how == GiveBack::None) return;
  thread_local std::vector<std::string_view> top, inner, pair;
  if (!resp::split_array_reply(reply, top) || top.size() < 2) return;
  std::vector<std::string_view> argv;
  std::string_view key = resp::bulk_text(top[0]);
  switch (how) {
    case GiveBack::ListHead:
    case GiveBack::ListTail:  // [key, element]
      argv = {how == GiveBack::ListHead ? "LPUSH" : "RPUSH", key, resp::bulk_text(top[1])};
      break;
    case GiveBack::SortedSet:  // [key, member, score]
      if (top.size() != 3) return;
      argv = {"ZADD", key, resp::bulk_text(top[2]), resp::bulk_text(top[1])};
      break;
    case GiveBack::ListByDirection: {  // [key, [e1, e2, ...]], taken from the LEFT or RIGHT end
      // BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT n]: the direction follows the keys
      const size_t at = 3 + req->keys.size();
      const bool left = at < req->argv.size() && resp::iequals(req->argv[at], "LEFT");
      if (!resp::split_array_reply(top[1], inner)) return;
      argv = {left ? "LPUSH" : "RPUSH", key};
      for (size_t i = inner.size(); i-- > 0;) argv.push_back(resp::bulk_text(inner[i]));  // e1 back at the end it left
      break;
    }
    case GiveBack::SortedSetMany: {  // [key, [[member, score], ...]]
      if (!resp::split_array_reply(top[1], inner)) return;
      argv = {"ZADD", key};
      std::vector<std::pair<std::string_view, std::string_view>> items;
      for (auto e : inner) {
        if (!resp::split_array_reply(e, pair) || pair.size() != 2) return;
        items.emplace_back(resp::bulk_text(pair[0]), resp::bulk_text(pair[1]));
      }
      for (const auto& [member, score] : items) {
        argv.push_back(score);
        argv.push_back(member);
      }
      break;
    }
    case GiveBack::None:
      return;
  }
  const NodeIndex node = req->fragments.front().node;
  BackendConn& b = server_.backends(node).for_client(0);
  ++server_.stats().blocking_given_back;
  spdlog::debug("node {}: a client left while its {} took from '{}': given back", server_.nodes()[node].name(),
                req->cmd->name, key);
  ++server_.give_backs_in_flight();
  b.command(argv, [node, this](std::string_view r) {
    --server_.give_backs_in_flight();
    if (r.empty() || r[0] == '-')
      spdlog::error("node {}: could not give back what a blocking pop took for a client that left: {}",
                    server_.nodes()[node].name(), r.empty() ? std::string("connection lost") : std::string(r));
  });
}

}  // namespace headroom::proxy
