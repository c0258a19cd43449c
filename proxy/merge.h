// Merging fragment replies into the one reply the client sees, by the command
// table's Merge policy. Only split and fan-out requests come here; everything else
// is forwarded as raw bytes.
#pragma once

namespace headroom::proxy {

class Server;
struct Request;

// Every fragment of `req` has answered: fills req.reply. If any fragment answered
// with an error, the client gets the first such error (in fragment order).
void merge_fragments(Server& server, Request& req);

}  // namespace headroom::proxy
