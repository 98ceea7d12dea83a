#include "cache/gateway_hook.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdio>

namespace fp::cache {

namespace {

// A copy of the request's context that a shared upstream call owns: the call may outlive the
// request that started it (other waiters still need the answer).
struct owned_call {
  http::request http;
  gateway::request_context ctx;
  size_t headers_synced = 0;
  explicit owned_call(const gateway::request_context& c)
      : http(c.http), ctx{http, c.req, c.api_key, c.request_id, {}, {}, c.t, {}, {}, {}, c.deployments} {}

  // What the router recorded on the copy, for the starting request's response and access log.
  // Only called on the starting request's thread, which is also the shared call's thread.
  void sync_to(gateway::request_context& to) {
    if (!ctx.provider.empty()) to.provider = ctx.provider;
    if (!ctx.upstream_model.empty()) to.upstream_model = ctx.upstream_model;
    if (to.t.upstream_start_ns < 0) to.t.upstream_start_ns = ctx.t.upstream_start_ns;
    for (; headers_synced < ctx.response_headers.size(); ++headers_synced)
      to.response_headers.push_back(ctx.response_headers[headers_synced]);
  }
  void sync_final(gateway::request_context& to) {
    sync_to(to);
    to.stats = ctx.stats;
    for (auto& f : ctx.log_fields) to.log_fields.push_back(f);
    ctx.log_fields.clear();
  }
};

// The starting request's sink: before its first chunk goes out (with the response head), it takes
// the routing headers the shared call set on its copy.
class syncing_sink final : public providers::chunk_sink {
 public:
  syncing_sink(providers::chunk_sink& client, gateway::request_context& ctx, owned_call& call)
      : client_(client), ctx_(ctx), call_(call) {}
  boost::asio::awaitable<bool> on_chunk(const api::chunk& c) override { co_return co_await on_chunks(std::span(&c, 1)); }
  boost::asio::awaitable<bool> on_chunks(std::span<const api::chunk> cs) override {
    if (first_) {
      first_ = false;
      call_.sync_to(ctx_);
    }
    co_return co_await client_.on_chunks(cs);
  }

 private:
  providers::chunk_sink& client_;
  gateway::request_context& ctx_;
  owned_call& call_;
  bool first_ = true;
};

class hook final : public gateway::cache_hook {
 public:
  hook(std::shared_ptr<cache> c, deployments_fn d) : c_(std::move(c)), deployments_(std::move(d)) {}

  bool bypass(gateway::request_context& ctx) override {
    if (!c_->bypasses(ctx.req, headers_of(ctx))) return false;
    annotate(ctx, status::bypass, std::nullopt);
    return true;
  }

  boost::asio::awaitable<result<api::usage>> stream(gateway::request_context& ctx, providers::chunk_sink& client,
                                                    gateway::stream_fn upstream) override {
    request_headers hs = headers_of(ctx);
    if (c_->bypasses(ctx.req, hs)) {  // most requests: nothing to build for the key
      annotate(ctx, status::bypass, std::nullopt);
      co_return co_await upstream(ctx, client);
    }
    std::string resolved = resolve(ctx), tenant = tenant_of(ctx);
    ticket t = co_await c_->begin(info(ctx, resolved, tenant, hs));
    annotate(ctx, t.st, t.similarity);
    if (t.st == status::bypass) co_return co_await upstream(ctx, client);
    // (gcc 12: no lambda temporaries inside a co_await expression; they get destroyed twice)
    if (!t.shared_call()) {
      upstream_stream_fn fn = [&ctx, &upstream](providers::chunk_sink& s) { return upstream(ctx, s); };
      co_return co_await c_->serve_stream(t, client, std::move(fn));
    }
    auto call = std::make_shared<owned_call>(ctx);
    syncing_sink sink(client, ctx, *call);
    upstream_stream_fn fn = [call, up = std::move(upstream)](providers::chunk_sink& s) { return up(call->ctx, s); };
    auto r = co_await c_->serve_stream(t, sink, std::move(fn));
    call->sync_final(ctx);
    co_return r;
  }

  boost::asio::awaitable<result<api::response>> complete(gateway::request_context& ctx,
                                                         gateway::complete_fn upstream) override {
    request_headers hs = headers_of(ctx);
    if (c_->bypasses(ctx.req, hs)) {
      annotate(ctx, status::bypass, std::nullopt);
      co_return co_await upstream(ctx);
    }
    std::string resolved = resolve(ctx), tenant = tenant_of(ctx);
    ticket t = co_await c_->begin(info(ctx, resolved, tenant, hs));
    annotate(ctx, t.st, t.similarity);
    if (t.st == status::bypass) co_return co_await upstream(ctx);
    if (!t.shared_call()) {
      upstream_complete_fn fn = [&ctx, &upstream]() { return upstream(ctx); };
      co_return co_await c_->serve_complete(t, std::move(fn));
    }
    auto call = std::make_shared<owned_call>(ctx);
    upstream_complete_fn fn = [call, up = std::move(upstream)]() { return up(call->ctx); };
    auto r = co_await c_->serve_complete(t, std::move(fn));
    call->sync_final(ctx);
    co_return r;
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

  static request_headers headers_of(const gateway::request_context& ctx) {
    request_headers h;
    h.cache_control = ctx.http.header("cache-control");
    h.ttl = ctx.http.header("x-fastpath-cache-ttl");
    h.semantic = ctx.http.header("x-fastpath-semantic-cache");
    return h;
  }

  static request_info info(const gateway::request_context& ctx, const std::string& resolved,
                           const std::string& tenant, const request_headers& hs) {
    request_info i;
    i.req = &ctx.req;
    i.upstream_model = resolved;
    i.tenant = tenant;
    i.headers = hs;
    return i;
  }

  static void annotate(gateway::request_context& ctx, status st, std::optional<double> similarity) {
    ctx.response_headers.emplace_back("x-fastpath-cache", std::string(status_name(st)));
    if (similarity) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4f", *similarity);
      ctx.response_headers.emplace_back("x-fastpath-cache-similarity", buf);
    }
    if (st == status::hit) ctx.provider = "cache";
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
