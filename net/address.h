// Addresses on the wire: a configured Endpoint (an IP literal, canonical, as conf/
// parsed it) as a sockaddr for libuv, and the text of a connected peer's address.
// No DNS anywhere: nothing here can block the loop.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <string>

#include "conf/config.h"

namespace headroom::net {

// Fills `out` for `e`. Returns 0, or libuv's error code for a host that is not an IP
// literal (conf rejects those, so that is a programming error).
int to_sockaddr(const conf::Endpoint& e, sockaddr_storage& out);

// "ip:port" of the connected peer of `tcp` ("[v6]:port" for IPv6), or "" if unknown.
std::string peer_of(const uv_tcp_t* tcp);
// The same for the local end (the address the connection came in on).
std::string local_of(const uv_tcp_t* tcp);

}  // namespace headroom::net
