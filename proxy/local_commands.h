// Commands the proxy answers itself: PING, ECHO, QUIT, SELECT, HELLO, AUTH, CLIENT
// SETNAME/GETNAME/ID/SETINFO, INFO. Replies follow Redis's wording.
#pragma once

#include <string>

namespace headroom::proxy {

class Server;
struct Request;

// Fills req.reply (the request's client is alive). May ask the client to close
// after its replies (QUIT).
void run_local_command(Server& server, Request& req);

// The INFO text for `section` ("" or "default", "all", or one section name).
std::string build_info(Server& server, std::string_view section);

}  // namespace headroom::proxy
