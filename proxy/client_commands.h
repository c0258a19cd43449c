// CLIENT's subcommands about headroom's own clients (the connections to headroom, not
// its connections to the nodes): LIST, INFO, KILL, REPLY, NO-EVICT, PAUSE, UNPAUSE,
// and the tracking family (TRACKING ON is refused; TRACKINGINFO, GETREDIR and CACHING
// answer as Redis does for a client that does not track, which every headroom client
// is). Replies and errors follow Redis 7.0's wording.
#pragma once

namespace headroom::proxy {

class Server;
struct Request;

// Answers one of those subcommands into req.reply (the request's client is alive).
// CLIENT KILL may close other clients at once, and the caller after its reply.
void run_client_command(Server& server, Request& req);

}  // namespace headroom::proxy
