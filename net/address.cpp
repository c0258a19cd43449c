#include "net/address.h"

#include <netinet/in.h>

#include <cstdio>

namespace headroom::net {

int to_sockaddr(const conf::Endpoint& e, sockaddr_storage& out) {
  out = {};
  if (e.host.find(':') != std::string::npos)
    return uv_ip6_addr(e.host.c_str(), e.port, reinterpret_cast<sockaddr_in6*>(&out));
  return uv_ip4_addr(e.host.c_str(), e.port, reinterpret_cast<sockaddr_in*>(&out));
}

namespace {

// "ip:port", or "[v6]:port" for IPv6 (as Redis writes addresses); "" for another family.
std::string format_address(const sockaddr_storage& addr) {
  char ip[64] = {0};
  char text[96];
  if (addr.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(a, ip, sizeof ip);
    std::snprintf(text, sizeof text, "%s:%u", ip, static_cast<unsigned>(ntohs(a->sin_port)));
    return text;
  }
  if (addr.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(a, ip, sizeof ip);
    std::snprintf(text, sizeof text, "[%s]:%u", ip, static_cast<unsigned>(ntohs(a->sin6_port)));
    return text;
  }
  return "";
}

}  // namespace

std::string peer_of(const uv_tcp_t* tcp) {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  return format_address(addr);
}

std::string local_of(const uv_tcp_t* tcp) {
  sockaddr_storage addr{};
  int len = sizeof addr;
  if (uv_tcp_getsockname(tcp, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  return format_address(addr);
}

}  // namespace headroom::net
