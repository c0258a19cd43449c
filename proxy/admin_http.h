// The admin HTTP port (config `admin`; off unless configured): Prometheus /metrics, a
// JSON API (/stats, /nodes, POST /nodes/<name>/drain, /rebalance, /reload) and a live
// page at /. On headroom's own loop, one request per connection (closed after the
// answer). Parsing is the http-parser library's (Debian's libhttp-parser-dev: small,
// callback-driven, no threads or loop of its own, so it sits on our libuv streams).
// Malformed requests get 400, headers over admin.max_header_bytes 431, bodies over
// admin.max_body_bytes 413, a request not complete within admin.request_timeout_ms
// 408; then the connection closes. With admin.token set, every POST needs
// `Authorization: Bearer <token>` (compared in constant time).
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "proxy/metrics.h"

namespace headroom::proxy {

class Server;

class AdminHttp {
 public:
  explicit AdminHttp(Server& server);
  ~AdminHttp();
  AdminHttp(const AdminHttp&) = delete;
  AdminHttp& operator=(const AdminHttp&) = delete;

  // Binds and listens on admin.listen: 0, or a libuv error code.
  int start();
  void stop();

  struct Conn;  // one HTTP connection (admin_http.cpp)
  // A complete request on `c` (from the parser's callbacks); its answer, now or later
  // (nothing when the connection has gone meanwhile).
  void handle(Conn& c);
  void respond(uint64_t conn_id, int status, std::string_view type, std::string body);

 private:
  static void on_connection(uv_stream_t* listener, int status);
  bool authorized(const Conn& c) const;

  static void on_second(uv_timer_t* t);

  Server& server_;
  uv_tcp_t* listener_ = nullptr;
  uv_timer_t* second_ = nullptr;  // samples the counters for the rates
  Rates rates_;
  uint64_t last_commands_ = 0, last_errors_ = 0, last_ms_ = 0;
  uint64_t next_id_ = 0;
  std::unordered_map<uint64_t, Conn*> conns_;
};

}  // namespace headroom::proxy
