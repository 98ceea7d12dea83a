#include "cache/gateway_hook.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>

namespace fp::cache {

namespace {

class hook final : public gateway::cache_hook {
 public:
  hook(std::shared_ptr<cache> c, deployments_fn d) : c_(std::move(c)), deployments_(std::move(d)) {}

  boost::asio::awaitable<result<api::usage>> stream(gateway::request_context& ctx, providers::chunk_sink& client,
                                                    gateway::stream_fn upstream) override {
    std::string resolved = resolve(ctx), tenant = tenant_of(ctx);
    ticket t = co_await c_->begin(info(ctx, resolved, tenant));
    annotate(ctx, t);
    co_return co_await c_->serve_stream(t, client, [&ctx, up = std::move(upstream)](providers::chunk_sink& s) {
      return up(ctx, s);
    });
  }

  boost::asio::awaitable<result<api::response>> complete(gateway::request_context& ctx,
                                                         gateway::complete_fn upstream) override {
    std::string resolved = resolve(ctx), tenant = tenant_of(ctx);
    ticket t = co_await c_->begin(info(ctx, resolved, tenant));
    annotate(ctx, t);
    co_return co_await c_->serve_complete(t, [&ctx, up = std::move(upstream)]() { return up(ctx); });
  }

 private:
  std::string resolve(const gateway::request_context& ctx) const {
    std::string out;
    if (deployments_) {
      for (const auto& d : deployments_(ctx.req.model)) {
        if (!out.empty()) out.push_back(',');
        out += d.p ? std::string(d.p->name()) : std::string("?");
        out.push_back('/');
        out += d.opts.upstream_model.empty() ? ctx.req.model : d.opts.upstream_model;
      }
    }
    return out.empty() ? ctx.req.model : out;
  }

  std::string tenant_of(const gateway::request_context& ctx) const {
    const std::string& th = c_->cfg().tenant_header;
    return tenant_id(ctx.api_key, th.empty() ? std::string_view{} : ctx.http.header(th));
  }

  static request_info info(const gateway::request_context& ctx, const std::string& resolved,
                           const std::string& tenant) {
    request_info i;
    i.req = &ctx.req;
    i.upstream_model = resolved;
    i.tenant = tenant;
    i.headers.cache_control = ctx.http.header("cache-control");
    i.headers.ttl = ctx.http.header("x-fastpath-cache-ttl");
    i.headers.semantic = ctx.http.header("x-fastpath-semantic-cache");
    return i;
  }

  static void annotate(gateway::request_context& ctx, const ticket& t) {
    ctx.response_headers.emplace_back("x-fastpath-cache", std::string(status_name(t.st)));
    if (t.similarity) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", *t.similarity);
      ctx.response_headers.emplace_back("x-fastpath-cache-similarity", buf);
    }
    if (t.st == status::hit) ctx.provider = "cache";
  }

  std::shared_ptr<cache> c_;
  deployments_fn deployments_;
};

}  // namespace

std::shared_ptr<gateway::cache_hook> make_gateway_hook(std::shared_ptr<cache> c, deployments_fn deployments) {
  return std::make_shared<hook>(std::move(c), std::move(deployments));
}

std::shared_ptr<gateway::cache_hook> make_gateway_hook(const gateway::config& cfg, deployments_fn deployments,
                                                       const clock& clk) {
  config cc;
  if (cfg.yaml && (*cfg.yaml)["cache"]) cc = config_from_yaml((*cfg.yaml)["cache"]);
  if (!cc.enabled) return nullptr;
  return make_gateway_hook(std::make_shared<cache>(std::move(cc), clk), std::move(deployments));
}

}  // namespace fp::cache
