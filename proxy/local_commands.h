// Commands the proxy answers itself: PING, ECHO, QUIT, SELECT, HELLO, AUTH, CLIENT
// SETNAME/GETNAME/ID/SETINFO (the rest of CLIENT: proxy/client_commands.h), INFO,
// SHUTDOWN, MONITOR, SLOWLOG, LATENCY. Replies follow Redis's wording.
#pragma once

#include <span>
#include <string>

namespace headroom::proxy {

class Server;
struct Request;

// Fills req.reply (the request's client is alive). May ask the client to close
// after its replies (QUIT).
void run_local_command(Server& server, Request& req);

// The INFO text for `sections` (none, "default", "all": every one; else those named).
std::string build_info(Server& server, std::span<const std::string_view> sections);

}  // namespace headroom::proxy
