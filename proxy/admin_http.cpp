#include "proxy/admin_http.h"

#include <http_parser.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <string_view>

#include "net/handle.h"
#include "proxy/admin_page.h"
#include "proxy/metrics.h"
#include "proxy/server.h"
#include "resp/ascii.h"

namespace headroom::proxy {

struct AdminHttp::Conn {
  AdminHttp* owner = nullptr;
  const conf::AdminConfig* limits = nullptr;
  uint64_t id = 0;
  uv_tcp_t* tcp = nullptr;
  uv_timer_t* timer = nullptr;  // admin.request_timeout_ms: 408
  http_parser parser{};
  std::string url, body, field, value, authorization;
  bool in_value = false;
  uint64_t header_bytes = 0;
  int refuse = 0;         // a limit the callbacks hit: its status
  bool answered = false;  // a response is written (or on its way): nothing more is read
  char buf[16384];

  void header_done() {
    if (in_value && resp::iequals(field, "authorization")) authorization = value;
    field.clear();
    value.clear();
    in_value = false;
  }
  void close() {
    if (tcp == nullptr) return;
    owner->conns_.erase(id);
    net::close_and_delete(timer);
    timer = nullptr;
    tcp->data = this;
    uv_close(reinterpret_cast<uv_handle_t*>(tcp), [](uv_handle_t* h) {
      delete static_cast<Conn*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
    });
    tcp = nullptr;
  }
};

namespace {

using Conn = AdminHttp::Conn;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

std::string error_json(std::string_view msg) { return "{\"error\":" + json_string(msg) + "}"; }

Conn& conn_of(http_parser* p) { return *static_cast<Conn*>(p->data); }

// Request line and header bytes, counted as the parser hands them over: past the limit, 431.
int count_header(Conn& c, size_t n) {
  c.header_bytes += n;
  if (c.header_bytes > c.limits->max_header_bytes) {
    c.refuse = 431;
    return 1;
  }
  return 0;
}

const http_parser_settings& settings() {
  static const http_parser_settings s = [] {
    http_parser_settings st;
    http_parser_settings_init(&st);
    st.on_url = [](http_parser* p, const char* at, size_t n) {
      Conn& c = conn_of(p);
      c.url.append(at, n);
      return count_header(c, n);
    };
    st.on_header_field = [](http_parser* p, const char* at, size_t n) {
      Conn& c = conn_of(p);
      if (c.in_value) c.header_done();
      c.field.append(at, n);
      return count_header(c, n);
    };
    st.on_header_value = [](http_parser* p, const char* at, size_t n) {
      Conn& c = conn_of(p);
      c.in_value = true;
      c.value.append(at, n);
      return count_header(c, n);
    };
    st.on_headers_complete = [](http_parser* p) {
      Conn& c = conn_of(p);
      c.header_done();
      if (p->content_length != ULLONG_MAX && p->content_length > c.limits->max_body_bytes) {
        c.refuse = 413;
        return -1;  // http-parser: an error, not "skip the body"
      }
      return 0;
    };
    st.on_body = [](http_parser* p, const char* at, size_t n) {
      Conn& c = conn_of(p);
      if (c.body.size() + n > c.limits->max_body_bytes) {
        c.refuse = 413;
        return 1;
      }
      c.body.append(at, n);
      return 0;
    };
    st.on_message_complete = [](http_parser* p) {
      Conn& c = conn_of(p);
      c.owner->handle(c);
      return 1;  // one request per connection: stop here
    };
    return st;
  }();
  return s;
}

// SHA-256 of both, compared with CRYPTO_memcmp: the time does not depend on where they differ.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
  unsigned int la = 0, lb = 0;
  EVP_Digest(a.data(), a.size(), da, &la, EVP_sha256(), nullptr);
  EVP_Digest(b.data(), b.size(), db, &lb, EVP_sha256(), nullptr);
  return la == lb && CRYPTO_memcmp(da, db, la) == 0;
}

}  // namespace

AdminHttp::AdminHttp(Server& server) : server_(server) {}

AdminHttp::~AdminHttp() { stop(); }

int AdminHttp::start() {
  const auto& cfg = server_.config().admin;
  listener_ = net::new_handle(server_.loop(), this, uv_tcp_init);
  sockaddr_storage addr{};
  int rc = uv_ip4_addr(cfg.listen.host.c_str(), cfg.listen.port, reinterpret_cast<sockaddr_in*>(&addr));
  if (rc != 0) rc = uv_ip6_addr(cfg.listen.host.c_str(), cfg.listen.port, reinterpret_cast<sockaddr_in6*>(&addr));
  if (rc == 0) rc = uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 128, &AdminHttp::on_connection);
  if (rc != 0) {
    spdlog::critical("admin: cannot listen on {}: {}", conf::to_string(cfg.listen), uv_strerror(rc));
    return rc;
  }
  spdlog::info("admin: HTTP on {}{}", conf::to_string(cfg.listen), cfg.token.empty() ? "" : " (POSTs need the token)");
  second_ = net::new_handle(server_.loop(), this, uv_timer_init);
  last_ms_ = uv_now(server_.loop());
  last_commands_ = server_.stats().commands_processed;
  last_errors_ = total_errors(server_.stats());
  uv_timer_start(second_, &AdminHttp::on_second, 1000, 1000);
  return 0;
}

void AdminHttp::on_second(uv_timer_t* t) {
  auto* self = static_cast<AdminHttp*>(t->data);
  const uint64_t now = uv_now(self->server_.loop());
  const uint64_t commands = self->server_.stats().commands_processed, errors = total_errors(self->server_.stats());
  const double secs = static_cast<double>(now - self->last_ms_) / 1000.0;
  if (secs > 0 && commands >= self->last_commands_ && errors >= self->last_errors_) {  // not across a RESETSTAT
    self->rates_.commands_per_s = static_cast<double>(commands - self->last_commands_) / secs;
    self->rates_.errors_per_s = static_cast<double>(errors - self->last_errors_) / secs;
  }
  self->last_ms_ = now;
  self->last_commands_ = commands;
  self->last_errors_ = errors;
}

void AdminHttp::stop() {
  std::vector<Conn*> all;
  for (auto& [id, c] : conns_) all.push_back(c);
  for (Conn* c : all) c->close();
  if (listener_ != nullptr) net::close_and_delete(listener_);
  listener_ = nullptr;
  if (second_ != nullptr) net::close_and_delete(second_);
  second_ = nullptr;
}

void AdminHttp::on_connection(uv_stream_t* listener, int status) {
  auto* self = static_cast<AdminHttp*>(listener->data);
  if (status < 0) return;
  auto* c = new Conn;
  c->owner = self;
  c->limits = &self->server_.config().admin;
  c->id = ++self->next_id_;
  c->tcp = new uv_tcp_t;
  uv_tcp_init(self->server_.loop(), c->tcp);
  c->tcp->data = c;
  if (uv_accept(listener, reinterpret_cast<uv_stream_t*>(c->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(c->tcp), [](uv_handle_t* h) {
      delete static_cast<Conn*>(h->data);
      delete reinterpret_cast<uv_tcp_t*>(h);
    });
    return;
  }
  self->conns_[c->id] = c;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->timer = net::new_handle(self->server_.loop(), c, uv_timer_init);
  uv_timer_start(
      c->timer,
      [](uv_timer_t* t) {
        auto* conn = static_cast<Conn*>(t->data);
        if (!conn->answered) conn->owner->respond(conn->id, 408, "application/json", error_json("request not complete in time"));
      },
      c->limits->request_timeout_ms, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(c->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* b) {
        auto* conn = static_cast<Conn*>(h->data);
        *b = uv_buf_init(conn->buf, sizeof conn->buf);
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
        auto* conn = static_cast<Conn*>(s->data);
        if (n < 0) {
          conn->close();
          return;
        }
        if (n == 0 || conn->answered) return;
        const size_t used = http_parser_execute(&conn->parser, &settings(), b->base, static_cast<size_t>(n));
        if (conn->answered) return;  // handled (or refused by a callback that answered)
        const auto err = HTTP_PARSER_ERRNO(&conn->parser);
        if (conn->refuse != 0) {
          conn->owner->respond(conn->id, conn->refuse, "application/json",
                               error_json(conn->refuse == 431 ? "request headers too large" : "request body too large"));
        } else if (err != HPE_OK || used != static_cast<size_t>(n)) {
          conn->owner->respond(conn->id, 400, "application/json",
                               error_json(std::string("malformed request: ") + http_errno_description(err)));
        }
      });
}

bool AdminHttp::authorized(const Conn& c) const {
  const std::string& token = server_.config().admin.token;
  if (token.empty()) return true;
  std::string_view a = c.authorization;
  if (!a.starts_with("Bearer ")) return false;
  return same_secret(a.substr(7), token);
}

void AdminHttp::handle(Conn& c) {
  c.answered = true;  // nothing more is read; the answer may come later (a main-server round trip)
  const auto method = static_cast<http_method>(c.parser.method);
  std::string path = c.url.substr(0, c.url.find('?'));
  const std::string query = c.url.find('?') == std::string::npos ? "" : c.url.substr(c.url.find('?') + 1);
  const uint64_t id = c.id;
  auto get_only = [&](auto fn) {
    if (method != HTTP_GET && method != HTTP_HEAD) respond(id, 405, "application/json", error_json("use GET"));
    else fn();
  };
  if (path == "/metrics") {
    get_only([&] { respond(id, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(server_, rates_)); });
  } else if (path == "/stats") {
    get_only([&] { respond(id, 200, "application/json", stats_json(server_, rates_)); });
  } else if (path == "/nodes") {
    get_only([&] { respond(id, 200, "application/json", nodes_json(server_)); });
  } else if (path == "/") {
    get_only([&] { respond(id, 200, "text/html; charset=utf-8", std::string(kAdminPage)); });
  } else if (path == "/rebalance" || path == "/reload" || (path.starts_with("/nodes/") && path.ends_with("/drain"))) {
    if (method != HTTP_POST) {
      respond(id, 405, "application/json", error_json("use POST"));
      return;
    }
    if (!authorized(c)) {
      respond(id, 401, "application/json", error_json("this needs the admin token: Authorization: Bearer <token>"));
      return;
    }
    auto done = [this, id](std::string error, std::string what) {
      if (error.empty()) respond(id, 200, "application/json", "{\"ok\":true," + what + "}");
      else respond(id, error.starts_with("ERR main server") ? 503 : 400, "application/json", error_json(error));
    };
    if (path == "/reload") {
      std::string error = server_.reload();
      done(error, "\"reloaded\":" + json_string(server_.config_path()));
    } else if (path == "/rebalance") {
      server_.ask_rebalancer("rebalance", [done](std::string error) { done(std::move(error), "\"rebalancing\":true"); });
    } else {
      const std::string name = path.substr(7, path.size() - 7 - 6);
      auto node = server_.nodes().find(name);
      if (!node) {
        respond(id, 404, "application/json", error_json("no data node named '" + name + "'"));
        return;
      }
      const bool off = query == "off" || query == "off=1";
      server_.drain_node(*node, !off, [done, name, off](std::string error) {
        done(std::move(error), "\"node\":" + json_string(name) + ",\"draining\":" + (off ? "false" : "true"));
      });
    }
  } else {
    respond(id, 404, "application/json", error_json("no such path: " + path));
  }
}

void AdminHttp::respond(uint64_t conn_id, int status, std::string_view type, std::string body) {
  auto it = conns_.find(conn_id);
  if (it == conns_.end()) return;  // gone meanwhile
  Conn* c = it->second;
  c->answered = true;
  uv_timer_stop(c->timer);
  uv_read_stop(reinterpret_cast<uv_stream_t*>(c->tcp));
  const bool head = static_cast<http_method>(c->parser.method) == HTTP_HEAD;
  struct Write {
    uv_write_t req;
    std::string bytes;
  };
  auto* w = new Write;
  w->bytes = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " + std::string(type) +
             "\r\nContent-Length: " + std::to_string(body.size()) +
             "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n" + (head ? std::string() : body);
  w->req.data = c;
  uv_buf_t buf = uv_buf_init(w->bytes.data(), static_cast<unsigned>(w->bytes.size()));
  const int rc = uv_write(&w->req, reinterpret_cast<uv_stream_t*>(c->tcp), &buf, 1, [](uv_write_t* req, int) {
    auto* wr = reinterpret_cast<Write*>(req);
    auto* conn = static_cast<Conn*>(req->data);
    delete wr;
    conn->close();
  });
  if (rc != 0) {
    delete w;
    c->close();
  }
}

}  // namespace headroom::proxy
