// headroom: a Redis-protocol proxy that places every new key on the data node with
// the most free memory. Startup: parse flags, load and check the config, run the loop
// until SIGINT/SIGTERM, then stop gracefully (in-flight replies are delivered).
#include <signal.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>
#include <memory>

#include "conf/cli.h"
#include "conf/config.h"
#include "proxy/logging.h"
#include "proxy/server.h"

using namespace headroom;

namespace {

void on_signal(uv_signal_t* handle, int signum) {
  auto* server = static_cast<proxy::Server*>(handle->data);
  if (signum == SIGHUP) {
    server->reload();  // the config, and the certificates it names
    return;
  }
  spdlog::info("received signal {}", signum);
  server->shutdown();
}

}  // namespace

int main(int argc, char** argv) {
  conf::CliOptions opts = conf::parse_cli(argc, argv);
  if (!opts.error.empty()) {
    std::fprintf(stderr, "headroom: %s\n\n%s", opts.error.c_str(), conf::usage_text().c_str());
    return 2;
  }
  if (opts.help) {
    std::fputs(conf::usage_text().c_str(), stdout);
    return 0;
  }
  if (opts.version) {
    std::printf("headroom %s\n", HEADROOM_VERSION);
    return 0;
  }
  conf::Config cfg;
  try {
    cfg = conf::load_config(opts.config_path);
  } catch (const conf::ConfigError& e) {
    std::fprintf(stderr, "headroom: %s: %s\n", opts.config_path.c_str(), e.what());
    return 1;
  }
  // Certificates and keys are loaded now, so -t reports a bad one too.
  net::TlsContexts tls;
  std::string tls_error;
  if (!net::make_tls_contexts(cfg, tls, tls_error)) {
    std::fprintf(stderr, "headroom: %s: %s\n", opts.config_path.c_str(), tls_error.c_str());
    return 1;
  }
  if (opts.test_config) {
    std::printf("headroom: configuration file %s is ok\n", opts.config_path.c_str());
    return 0;
  }
  if (!proxy::setup_logging(cfg)) {
    std::fprintf(stderr, "headroom: cannot open log file %s\n", cfg.log_file.c_str());
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  uv_loop_t* loop = uv_default_loop();
  int rc = 0;
  {
    auto server = std::make_unique<proxy::Server>(loop, cfg, opts.config_path, std::move(tls));
    uv_signal_t sigint, sigterm, sighup;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sighup);
    sigint.data = sigterm.data = sighup.data = server.get();
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sighup, on_signal, SIGHUP);  // reloads the config and certificates
    // Signal handles must not keep the loop alive once everything else has stopped.
    uv_unref(reinterpret_cast<uv_handle_t*>(&sigint));
    uv_unref(reinterpret_cast<uv_handle_t*>(&sigterm));
    uv_unref(reinterpret_cast<uv_handle_t*>(&sighup));

    rc = server->start();
    if (rc != 0) server->shutdown();  // the reason is logged
    uv_run(loop, UV_RUN_DEFAULT);
    if (rc == 0 && server->failed()) rc = 1;
    server.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sighup), nullptr);
    uv_run(loop, UV_RUN_DEFAULT);  // runs the close callbacks
  }
  uv_loop_close(loop);
  spdlog::info("headroom stopped");
  return rc == 0 ? 0 : 1;
}
