// The gateway object: builds providers and the model table from the config, owns the server.
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <thread>
#include <unordered_map>

#include "gateway/pipeline_impl.hpp"

namespace fp::gateway {

struct gateway::impl {
  config cfg;
  std::vector<std::unique_ptr<providers::provider>> providers;
  std::unordered_map<std::string, std::vector<deployment>> models;
  std::unique_ptr<pipeline> pipe;
  std::unique_ptr<http::server> srv;
  std::thread bg;
};

gateway::gateway(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gateway::~gateway() {
  if (impl_->bg.joinable()) {
    impl_->srv->stop();
    impl_->bg.join();
  }
  // Providers hold pooled sockets bound to the server's io_contexts: destroy them first.
  impl_->pipe.reset();
  impl_->models.clear();
  impl_->providers.clear();
  impl_->srv.reset();
}

result<std::unique_ptr<gateway>> gateway::create(config cfg) {
  auto im = std::make_unique<impl>();
  im->cfg = std::move(cfg);
  auto& c = im->cfg;
  if (c.server.threads <= 0) c.server.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unordered_map<std::string, std::pair<providers::provider*, const provider_config*>> by_name;
  for (size_t i = 0; i < c.providers.size(); ++i) {
    auto p = providers::make_provider(c.providers[i].spec);
    if (!p) return p.error();
    by_name[c.providers[i].spec.name] = {p->get(), &c.providers[i]};
    im->providers.push_back(std::move(*p));
  }
  boost::json::array list;
  for (size_t i = 0; i < c.models.size(); ++i) {
    const auto& m = c.models[i];
    std::vector<deployment> ds;
    for (size_t j = 0; j < m.deployments.size(); ++j) {
      auto it = by_name.find(m.deployments[j].provider);
      if (it == by_name.end())
        return make_error(errc::invalid_request, fmt::format("models[{}].deployments[{}].provider: no provider named '{}'",
                                                             i, j, m.deployments[j].provider));
      deployment d;
      d.p = it->second.first;
      const auto& t = it->second.second->t;
      d.opts.upstream_model = m.deployments[j].upstream_model;
      d.opts.connect_timeout = t.connect;
      d.opts.first_byte_timeout = t.first_byte;
      d.opts.chunk_gap_timeout = t.chunk_gap;
      d.opts.total_timeout = t.total;
      ds.push_back(std::move(d));
    }
    im->models[m.name] = std::move(ds);
    list.push_back(boost::json::object{{"id", m.name}, {"object", "model"}, {"created", 0}, {"owned_by", "fastpath"}});
  }
  std::string models_json = boost::json::serialize(boost::json::object{{"object", "list"}, {"data", std::move(list)}});
  auto* raw = im.get();
  im->pipe = std::make_unique<pipeline>(
      raw->cfg,
      [raw](std::string_view model) -> std::span<const deployment> {
        auto it = raw->models.find(std::string(model));
        if (it == raw->models.end()) return {};
        return it->second;
      },
      std::move(models_json));
  im->srv = std::make_unique<http::server>(c.server, *im->pipe);
  return std::unique_ptr<gateway>(new gateway(std::move(im)));
}

void gateway::set_cache(std::shared_ptr<cache_hook> c) { impl_->pipe->cache_ = std::move(c); }
void gateway::set_router(std::shared_ptr<router> r) { impl_->pipe->router_ = std::move(r); }
void gateway::add_request_stage(std::shared_ptr<request_stage> s) { impl_->pipe->stages_.push_back(std::move(s)); }
const config& gateway::cfg() const noexcept { return impl_->cfg; }

std::span<const deployment> gateway::deployments_of(std::string_view model) const {
  auto it = impl_->models.find(std::string(model));
  if (it == impl_->models.end()) return {};
  return it->second;
}

result<uint16_t> gateway::start() {
  auto r = impl_->srv->listen();
  if (!r) return r.error();
  impl_->bg = std::thread([this] { impl_->srv->run(); });
  return impl_->srv->port();
}

result<void> gateway::run() {
  auto r = impl_->srv->listen();
  if (!r) return r.error();
  log(log_level::info, "gateway",
      fmt::format("listening on http://{}:{} ({} threads)", impl_->cfg.server.host, impl_->srv->port(),
                  impl_->cfg.server.threads));
  impl_->srv->run();
  return {};
}

void gateway::stop() { impl_->srv->stop(); }

void gateway::wait() {
  if (impl_->bg.joinable()) impl_->bg.join();
}

}  // namespace fp::gateway
