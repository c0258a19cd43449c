// TLS over libuv streams, with OpenSSL's memory BIOs: the socket's bytes are read
// and written by libuv as for plaintext, and a TlsSession sits between them and the
// connection's plaintext buffers. The three connection kinds (clients, data nodes,
// control connections) do the same four things with it:
//
//   read callback:  received(n) after libuv filled read_space(), then decrypt()
//                   into the plaintext input buffer until it returns 0;
//   flush:          seal(plaintext out, ciphertext to write), then one uv_write;
//   after either:   wants_write() says the handshake (or an alert) has bytes to send.
//
// TLS is off by default (conf/config.h: tls, backend_tls) and costs the plaintext
// path one pointer test.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>

#include "conf/config.h"
#include "resp/buffer.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace headroom::net {

// An SSL_CTX built from the config, for one side: accepting clients, or connecting
// to backends. Built once at startup; certificate problems are reported then.
class TlsContext {
 public:
  // Both return nullptr and set `error` (naming the file and OpenSSL's reason) on failure.
  static std::unique_ptr<TlsContext> for_clients(const conf::TlsServerConfig& config, std::string& error);
  static std::unique_ptr<TlsContext> for_backends(const conf::TlsClientConfig& config, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  bool accepts() const { return accepts_; }

 private:
  TlsContext(SSL_CTX* ctx, bool accepts) : ctx_(ctx), accepts_(accepts) {}
  SSL_CTX* ctx_;
  bool accepts_;                 // the server side (clients connect to us)
  std::string server_name_;      // backends: SNI and the name to verify
  bool verify_ = true;           // backends: check the server's certificate

  friend class TlsSession;
};

// What the config asks for: a context for clients (tls), one for backends
// (backend_tls), either absent when off.
struct TlsContexts {
  std::unique_ptr<TlsContext> clients;
  std::unique_ptr<TlsContext> backends;
};
// false, with `error` naming the config field, when a certificate or key is unusable.
bool make_tls_contexts(const conf::Config& config, TlsContexts& out, std::string& error);

class TlsSession {
 public:
  // `peer_ip`: the backend's address, checked against the certificate's IP
  // subjectAltName when the config names no server_name. Unused when accepting.
  TlsSession(const TlsContext& ctx, const std::string& peer_ip);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Where libuv reads ciphertext to: one scratch buffer shared by every session, as
  // libuv calls a stream's read callback right after its alloc callback, so no
  // connection holds a read buffer of its own between reads.
  static uv_buf_t read_space();

  // Connecting side: starts the handshake (the ClientHello waits in wants_write()).
  bool start_handshake();
  // `n` bytes of ciphertext landed in read_space(). false: fatal, see error().
  bool received(size_t n);
  // Decrypts into `plain`. Returns the bytes appended (0: nothing more for now), or
  // -1 on a fatal error or the peer's close_notify (see error(), closed()).
  ssize_t decrypt(resp::Buffer& plain, size_t chunk);
  // Once established, encrypts up to kSealSliceBytes of `plain` (consuming them), so
  // a huge reply goes out in slices and the ciphertext buffers stay small; in any
  // state, moves every ciphertext byte waiting to be sent into `cipher`. false: fatal.
  bool seal(resp::Buffer& plain, resp::Buffer& cipher);

  bool established() const { return established_; }
  bool wants_write() const;
  bool closed() const { return closed_; }  // the peer sent close_notify
  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384", for logs.
  std::string describe() const;

 private:
  bool advance_handshake();
  bool fatal(int ret, const char* during);

  SSL* ssl_;
  BIO* rbio_;  // ciphertext in (owned by ssl_)
  BIO* wbio_;  // ciphertext out (owned by ssl_)
  bool established_ = false;
  bool closed_ = false;
  std::string error_;
};

}  // namespace headroom::net
