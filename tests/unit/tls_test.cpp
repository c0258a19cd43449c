// TlsSession without sockets: two sessions, a client (as towards a backend) and a
// server (as towards a client), exchange ciphertext through memory, the way the
// connections feed them from libuv. Certificates: tests/unit/tls/README.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "net/tls.h"

using headroom::net::TlsContext;
using headroom::net::TlsSession;
using headroom::resp::Buffer;
namespace conf = headroom::conf;

namespace {

std::string cert_path(const char* name) { return std::string(HEADROOM_SOURCE_DIR) + "/tests/unit/tls/" + name; }

conf::TlsServerConfig server_config() {
  conf::TlsServerConfig c;
  c.enabled = true;
  c.cert_file = cert_path("server.crt");
  c.key_file = cert_path("server.key");
  return c;
}

conf::TlsClientConfig client_config(const char* ca = "ca.crt") {
  conf::TlsClientConfig c;
  c.enabled = true;
  c.ca_file = cert_path(ca);
  return c;
}

struct Pair {
  std::unique_ptr<TlsContext> server_ctx, client_ctx;
  std::unique_ptr<TlsSession> server, client;

  Pair(const conf::TlsServerConfig& sc, const conf::TlsClientConfig& cc, const std::string& peer_ip = "127.0.0.1") {
    std::string error;
    server_ctx = TlsContext::for_clients(sc, error);
    REQUIRE_MESSAGE(server_ctx, error);
    client_ctx = TlsContext::for_backends(cc, error);
    REQUIRE_MESSAGE(client_ctx, error);
    server = std::make_unique<TlsSession>(*server_ctx, std::string());
    client = std::make_unique<TlsSession>(*client_ctx, peer_ip);
  }

  // Seals `plain` on `from` and hands the ciphertext to `to` in read-sized pieces, as
  // libuv would. false when either side fails.
  static bool send(TlsSession& from, TlsSession& to, Buffer& plain) {
    Buffer cipher;
    if (!from.seal(plain, cipher)) return false;
    size_t off = 0;
    while (off < cipher.size()) {
      uv_buf_t space = TlsSession::read_space();
      size_t n = std::min<size_t>(space.len, cipher.size() - off);
      std::memcpy(space.base, cipher.data() + off, n);
      if (!to.received(n)) return false;
      off += n;
    }
    return true;
  }

  bool handshake() {
    if (!client->start_handshake()) return false;
    Buffer none;
    for (int i = 0; i < 10 && !(client->established() && server->established()); ++i)
      if (!send(*client, *server, none) || !send(*server, *client, none)) return false;
    return client->established() && server->established();
  }

  static std::string drain(TlsSession& s) {
    Buffer b;
    while (s.decrypt(b, 16 * 1024) > 0) {
    }
    return std::string(b.view());
  }
};

}  // namespace

TEST_CASE("TLS: handshake, requests and replies, a large reply sealed in slices") {
  Pair p(server_config(), client_config());
  REQUIRE(p.handshake());
  CHECK(p.client->describe().rfind("TLSv1.3 ", 0) == 0);

  Buffer request;
  request.append("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
  REQUIRE(Pair::send(*p.client, *p.server, request));
  CHECK(request.empty());
  CHECK(Pair::drain(*p.server) == "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");

  std::string big(3 << 20, ' ');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  Buffer reply;
  reply.append(big);
  std::string got;
  int seals = 0;
  while (!reply.empty()) {
    REQUIRE(Pair::send(*p.server, *p.client, reply));
    ++seals;
    got += Pair::drain(*p.client);
  }
  CHECK(seals >= 12);  // 256 KB of plaintext per seal: one connection's buffers stay small
  CHECK(got == big);
}

TEST_CASE("TLS: a backend's certificate must chain to ca_file and name its IP or server_name") {
  SUBCASE("an unrelated CA") {
    Pair p(server_config(), client_config("other-ca.crt"));
    CHECK_FALSE(p.handshake());
    CHECK(p.client->error().find("certificate verify failed") != std::string::npos);
  }
  SUBCASE("another IP than the certificate's") {
    Pair p(server_config(), client_config(), "127.0.0.2");
    CHECK_FALSE(p.handshake());
    CHECK(p.client->error().find("IP address mismatch") != std::string::npos);
  }
  SUBCASE("server_name: the certificate's name passes, another fails") {
    conf::TlsClientConfig good = client_config();
    good.server_name = "localhost";
    CHECK(Pair(server_config(), good, "10.0.0.1").handshake());
    conf::TlsClientConfig bad = client_config();
    bad.server_name = "redis.example.com";
    Pair p(server_config(), bad);
    CHECK_FALSE(p.handshake());
    CHECK(p.client->error().find("mismatch") != std::string::npos);
  }
  SUBCASE("verify: false trusts anything") {
    conf::TlsClientConfig insecure = client_config("other-ca.crt");
    insecure.verify = false;
    CHECK(Pair(server_config(), insecure, "127.0.0.2").handshake());
  }
}

TEST_CASE("TLS: client certificates required, garbage, and bad key files") {
  conf::TlsServerConfig sc = server_config();
  sc.ca_file = cert_path("ca.crt");
  sc.auth_clients = conf::TlsServerConfig::ClientAuth::kYes;
  Pair required(sc, client_config());
  CHECK_FALSE(required.handshake());
  CHECK_FALSE(required.server->error().empty());

  Pair p(server_config(), client_config());
  const char garbage[] = "PING\r\n";  // a plaintext client on a TLS port
  std::memcpy(TlsSession::read_space().base, garbage, sizeof garbage - 1);
  CHECK_FALSE(p.server->received(sizeof garbage - 1));
  CHECK(p.server->error().find("handshake failed") != std::string::npos);

  conf::TlsServerConfig bad_key = server_config();
  bad_key.key_file = cert_path("ca.crt");  // a certificate where the key should be
  std::string error;
  CHECK(TlsContext::for_clients(bad_key, error) == nullptr);
  CHECK(error.rfind("tls.key_file: cannot load", 0) == 0);
}
