// `fastpath serve`: the gateway. YAML config (--config) or the embedded defaults, plus flags for
// the common cases. SIGINT/SIGTERM stop it gracefully (running streams may finish).
#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <csignal>
#include <pthread.h>
#include <thread>

#include "cache/gateway_hook.hpp"
#include "gateway/gateway.hpp"
#include "routing/routing.hpp"

namespace fp::cli {

namespace {

struct serve_args {
  std::string config_path;
  std::string host;
  int port = -1;
  int threads = -1;
  std::string log_level;
  bool no_access_log = false;
  std::string model_path = "models/stories260K.gguf";
};

void run_serve(const serve_args& a) {
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  gateway::config cfg;
  if (!a.config_path.empty()) {
    auto c = gateway::load_config(a.config_path);
    if (!c) throw std::runtime_error(c.error().message);
    cfg = std::move(*c);
  } else {
    cfg = gateway::default_config(a.model_path);
  }
  if (!a.host.empty()) cfg.server.host = a.host;
  if (a.port >= 0) cfg.server.port = static_cast<uint16_t>(a.port);
  if (a.threads >= 0) cfg.server.threads = a.threads;
  if (!a.log_level.empty()) cfg.log_level = a.log_level;
  if (a.no_access_log) cfg.access_log = false;
  log_level lv;
  if (!parse_log_level(cfg.log_level, lv)) throw std::runtime_error("--log-level: must be debug, info, warn, error or off");
  set_log_level(lv);

  auto gw = gateway::gateway::create(std::move(cfg));
  if (!gw) throw std::runtime_error(gw.error().message);
  {  // the response cache (`cache:` section; on by default for repeatable requests)
    gateway::gateway* g = gw->get();
    auto hook = cache::make_gateway_hook(g->cfg(), [g](std::string_view m) { return g->deployments_of(m); });
    if (hook) g->set_cache(std::move(hook));
  }
  // Routing (`routing:` section): aliases, balancing, retries, hedging, rate limits.
  auto routing_engine = routing::attach(**gw);
  std::thread sig([&g = **gw, set] {
    int s = 0;
    sigwait(&set, &s);
    log(log_level::info, "serve", fmt::format("signal {}: stopping (running streams may finish)", s));
    g.stop();
  });
  sig.detach();
  auto r = (*gw)->run();
  if (!r) throw std::runtime_error(r.error().message);
  log(log_level::info, "serve", "stopped");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<serve_args>();
  auto* c = app.add_subcommand("serve", "Run the OpenAI-compatible streaming gateway");
  c->add_option("--config,-c", a->config_path, "YAML config (docs/config/gateway.md); default: embedded mock models");
  c->add_option("--host", a->host, "Address to bind (overrides server.host)");
  c->add_option("--port,-p", a->port, "Port to bind, 0 = any free port (overrides server.port)");
  c->add_option("--threads,-t", a->threads, "Worker threads, 0 = one per core (overrides server.threads)");
  c->add_option("--log-level", a->log_level, "debug, info, warn, error or off (overrides log.level)");
  c->add_flag("--no-access-log", a->no_access_log, "Do not write the JSON access log to stdout");
  c->add_option("--model", a->model_path, "Local GGUF model served as `stories260K` by the embedded defaults");
  c->callback([a] { run_serve(*a); });
}

}  // namespace fp::cli
