#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>

namespace headroom::net {

namespace {

// The largest read libuv makes into the shared scratch buffer.
constexpr size_t kScratchBytes = 64 * 1024;
char g_scratch[kScratchBytes];

// Plaintext encrypted per seal(): a huge reply is sealed and written in slices, so the
// ciphertext buffers of one connection stay this size, not the reply's.
constexpr size_t kSealSliceBytes = 256 * 1024;

// OpenSSL's queued errors as one line, emptying the queue: a later SSL_get_error on
// another connection must not see them.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

bool set_min_version(SSL_CTX* ctx, const std::string& v) {
  return SSL_CTX_set_min_proto_version(ctx, v == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION) == 1;
}

// Options both sides share: no compression (CRIME), no renegotiation (a client
// could otherwise make the loop do handshakes on demand), and buffers released while
// a connection is idle, so thousands of idle TLS clients cost little memory.
void common_options(SSL_CTX* ctx) {
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

bool load_key_pair(SSL_CTX* ctx, const std::string& cert, const std::string& key, const std::string& field,
                   std::string& error) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
    error = field + ".cert_file: cannot load " + cert + ": " + openssl_errors();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = field + ".key_file: cannot load " + key + ": " + openssl_errors();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = field + ".key_file: " + key + " is not the key of " + cert + ": " + openssl_errors();
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::for_clients(const conf::TlsServerConfig& config, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    error = "tls: " + openssl_errors();
    return nullptr;
  }
  std::unique_ptr<TlsContext> out(new TlsContext(ctx, true));
  common_options(ctx);
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (!set_min_version(ctx, config.min_version)) {
    error = "tls.min_version: " + openssl_errors();
    return nullptr;
  }
  if (!load_key_pair(ctx, config.cert_file, config.key_file, "tls", error)) return nullptr;
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      error = "tls.ca_file: cannot load " + config.ca_file + ": " + openssl_errors();
      return nullptr;
    }
    // Tells clients which CAs their certificate may chain to.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str())) SSL_CTX_set_client_CA_list(ctx, names);
  }
  using Auth = conf::TlsServerConfig::ClientAuth;
  int mode = config.auth_clients == Auth::kNo         ? SSL_VERIFY_NONE
             : config.auth_clients == Auth::kOptional ? SSL_VERIFY_PEER
                                                      : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  // Session resumption with verified clients needs a context id.
  static const unsigned char kSessionContext[] = "headroom";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  return out;
}

std::unique_ptr<TlsContext> TlsContext::for_backends(const conf::TlsClientConfig& config, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    error = "backend_tls: " + openssl_errors();
    return nullptr;
  }
  std::unique_ptr<TlsContext> out(new TlsContext(ctx, false));
  out->server_name_ = config.server_name;
  out->verify_ = config.verify;
  common_options(ctx);
  set_min_version(ctx, "1.2");
  if (config.verify) {
    int ok = config.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx)
                                    : SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr);
    if (ok != 1) {
      error = "backend_tls.ca_file: cannot load " + config.ca_file + ": " + openssl_errors();
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!config.cert_file.empty() && !load_key_pair(ctx, config.cert_file, config.key_file, "backend_tls", error))
    return nullptr;
  return out;
}

bool make_tls_contexts(const conf::Config& config, TlsContexts& out, std::string& error) {
  if (config.tls.enabled && !(out.clients = TlsContext::for_clients(config.tls, error))) return false;
  if (config.backend_tls.enabled && !(out.backends = TlsContext::for_backends(config.backend_tls, error))) return false;
  return true;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(const TlsContext& ctx, const std::string& peer_ip) {
  ssl_ = SSL_new(ctx.ctx_);
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  // An empty input BIO means "wait for more", not end of stream.
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  if (ctx.accepts_) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (!ctx.server_name_.empty()) {
    SSL_set_tlsext_host_name(ssl_, ctx.server_name_.c_str());
    if (ctx.verify_) SSL_set1_host(ssl_, ctx.server_name_.c_str());
  } else if (ctx.verify_) {
    // Addresses are IP literals (no DNS): the certificate must name that IP.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), peer_ip.c_str());
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

uv_buf_t TlsSession::read_space() { return uv_buf_init(g_scratch, kScratchBytes); }

bool TlsSession::fatal(int ret, const char* during) {
  int e = SSL_get_error(ssl_, ret);
  long verify = SSL_get_verify_result(ssl_);
  error_ = std::string("TLS ") + during + " failed: ";
  if (verify != X509_V_OK) {
    error_ += "certificate verify failed: ";
    error_ += X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else if (e == SSL_ERROR_SSL) {
    error_ += openssl_errors();
  } else {
    error_ += "error " + std::to_string(e);
    ERR_clear_error();
  }
  return false;
}

bool TlsSession::start_handshake() { return advance_handshake(); }

bool TlsSession::advance_handshake() {
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    established_ = true;
    return true;
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
  return fatal(r, "handshake");
}

bool TlsSession::received(size_t n) {
  if (BIO_write(rbio_, g_scratch, static_cast<int>(n)) != static_cast<int>(n)) {
    error_ = "TLS: out of memory";
    return false;
  }
  return established_ || advance_handshake();
}

ssize_t TlsSession::decrypt(resp::Buffer& plain, size_t chunk) {
  if (!established_) return 0;
  char* p = plain.writable(chunk);
  int room = static_cast<int>(std::min<size_t>(plain.writable_size(), INT_MAX));
  int r = SSL_read(ssl_, p, room);
  if (r > 0) {
    plain.commit(static_cast<size_t>(r));
    return r;
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ) return 0;
  if (e == SSL_ERROR_ZERO_RETURN) {
    closed_ = true;
    error_ = "TLS connection closed by peer";
    return -1;
  }
  fatal(r, "read");
  return -1;
}

bool TlsSession::seal(resp::Buffer& plain, resp::Buffer& cipher) {
  if (established_ && !plain.empty()) {
    size_t n = std::min(plain.size(), kSealSliceBytes);
    // No partial writes (SSL_MODE_ENABLE_PARTIAL_WRITE is off) and a memory BIO never
    // blocks: either all n bytes are encrypted or the session is broken.
    int r = SSL_write(ssl_, plain.data(), static_cast<int>(n));
    if (r <= 0) return fatal(r, "write");
    plain.consume(n);
  }
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending > 0) {
    char* p = cipher.writable(pending);
    int got = BIO_read(wbio_, p, static_cast<int>(pending));
    if (got > 0) cipher.commit(static_cast<size_t>(got));
  }
  return true;
}

bool TlsSession::wants_write() const { return BIO_ctrl_pending(wbio_) > 0; }

std::string TlsSession::describe() const {
  return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

}  // namespace headroom::net
