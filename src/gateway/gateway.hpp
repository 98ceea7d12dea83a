// Public header of src/gateway (fp_gateway): the serving pipeline behind the HTTP server.
//
//   auth -> parse -> request stages (e.g. compress) -> resolve model -> cache_hook
//        -> router (deployments; retries, fallback, hedging) -> provider
//        -> chunk_sink chain (cache fill, metrics) -> client -> access log + metrics
//
// The seams (cache_hook, router, request_stage) are small interfaces with trivial defaults, so the
// cache and routing components plug in from their own directories (docs/design/gateway.md).
// Asio and Beast stay out of this header (only the light awaitable type).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.hpp"
#include "common/common.hpp"
#include "http/http.hpp"
#include "providers/provider.hpp"
#include "providers/providers.hpp"

namespace YAML {
class Node;
}

namespace fp::gateway {

// ---- configuration (every field: docs/config/gateway.md) ----------------------------------------

struct timeouts {
  std::chrono::milliseconds connect{5000};
  std::chrono::milliseconds first_byte{60000};
  std::chrono::milliseconds chunk_gap{30000};
  std::chrono::milliseconds total{600000};
};

struct provider_config {
  providers::deployment_spec spec;
  timeouts t;
};

struct model_route {
  std::string provider;        // a providers[].name
  std::string upstream_model;  // model name sent upstream ("" = the client's model name)
};

struct model_config {
  std::string name;  // what clients ask for
  std::vector<model_route> deployments;  // in preference order
};

struct config {
  http::server_options server;
  std::vector<std::string> api_keys;  // gateway keys (empty: no auth); resolved from api_keys_env
  std::string api_keys_env;
  std::string log_level = "info";
  bool access_log = true;
  timeouts default_timeouts;
  std::vector<provider_config> providers;
  std::vector<model_config> models;
  std::shared_ptr<const YAML::Node> yaml;  // the whole document, for other components' sections
};

// Parses and validates a YAML config text. Errors name the field ("providers[2].base_url: ...").
// API keys are read from the environment variables the config names.
result<config> config_from_yaml(std::string_view yaml_text);
result<config> load_config(const std::string& path);
// The embedded defaults: mock providers for gpt-4o, gpt-4o-mini, claude-3-haiku, local-7b and a
// zero-delay `mock-zero`; plus `stories260K` on the local engine when built and the model file
// exists (models/stories260K.gguf, or model_path when given).
config default_config(const std::string& model_path = "models/stories260K.gguf");

// ---- the request as it moves through the pipeline ------------------------------------------------

struct timing {
  int64_t received_ns = 0;        // request head+body read
  int64_t upstream_start_ns = -1; // the first provider call started
  int64_t first_chunk_ns = -1;    // first content chunk written to the client
  int64_t last_chunk_ns = -1;
  int64_t done_ns = -1;
};

// One way to serve a model: a provider plus what to send it.
struct deployment {
  providers::provider* p = nullptr;
  providers::call_options opts;  // upstream_model + timeouts
};

// A request id ("fp-<wall ms hex>-<sequence hex>", at most 31 characters) stored inline: the
// request path allocates nothing for it.
class request_id_t {
 public:
  void assign(const char* b, const char* e) noexcept {
    n_ = static_cast<uint8_t>(std::min<size_t>(static_cast<size_t>(e - b), sizeof buf_));
    std::memcpy(buf_, b, n_);
  }
  std::string_view view() const noexcept { return {buf_, n_}; }
  operator std::string_view() const noexcept { return view(); }

 private:
  char buf_[31];
  uint8_t n_ = 0;
};

struct request_context {
  const http::request& http;
  api::request req;
  std::string api_key;      // the gateway key the client presented ("" without auth)
  request_id_t request_id;  // also sent as x-request-id
  std::string provider;     // deployment that answered (set by the router; "cache" for hits)
  std::string upstream_model;
  timing t;
  providers::call_stats stats;
  http::header_list response_headers;  // stages may add headers (e.g. x-fastpath-cache)
  // Extra access-log fields (key, string value), e.g. the routing decision (added by routing).
  std::vector<std::pair<std::string, std::string>> log_fields;
  // The requested model's deployments (the gateway's model table, which outlives every request),
  // set once the request stages ran; what the router is called with.
  std::span<const deployment> deployments;
};

// ---- seams ----------------------------------------------------------------------------------------

// The upstream call handed to the cache seam. It takes the context to run with (the request's own,
// or a copy the cache owns, so one shared upstream call can outlive the request that started it)
// and captures nothing request-scoped.
using stream_fn = std::function<boost::asio::awaitable<result<api::usage>>(request_context&, providers::chunk_sink&)>;
using complete_fn = std::function<boost::asio::awaitable<result<api::response>>(request_context&)>;

// Optional stage before routing (compression, guards). May rewrite ctx.req or reject the request.
class request_stage {
 public:
  virtual ~request_stage() = default;
  virtual boost::asio::awaitable<result<void>> on_request(request_context& ctx) = 0;
};

// Response cache seam. Default: pass-through. An implementation either answers from its store
// (writing chunks into `client`), or calls `upstream` with a sink that wraps `client` to fill the
// store as chunks pass. It sets ctx.provider = "cache" on a hit and may add response headers.
class cache_hook {
 public:
  virtual ~cache_hook() = default;
  // True when the cache has nothing to do with this request (decided without building a key; the
  // hook records it, e.g. an x-fastpath-cache: bypass header): the pipeline then calls the router
  // itself, without the hook's coroutine.
  virtual bool bypass(request_context& ctx) { return false; }
  virtual boost::asio::awaitable<result<api::usage>> stream(request_context& ctx, providers::chunk_sink& client,
                                                            stream_fn upstream);
  virtual boost::asio::awaitable<result<api::response>> complete(request_context& ctx, complete_fn upstream);
};

// Routing seam: runs the call over the model's deployments. Default: try them in order, moving
// to the next only when a deployment fails before its first chunk reached the client (502, 504,
// 429, 5xx). Implementations set ctx.provider / ctx.upstream_model and ctx.t.upstream_start_ns
// (the first time) and fill ctx.stats.
class router {
 public:
  virtual ~router() = default;
  virtual boost::asio::awaitable<result<api::usage>> stream(request_context& ctx, std::span<const deployment> ds,
                                                            providers::chunk_sink& sink);
  virtual boost::asio::awaitable<result<api::response>> complete(request_context& ctx,
                                                                 std::span<const deployment> ds);
};

// ---- the gateway -----------------------------------------------------------------------------------

class gateway {
 public:
  // Builds the providers and the model table. Errors name the config field.
  static result<std::unique_ptr<gateway>> create(config cfg);
  ~gateway();

  void set_cache(std::shared_ptr<cache_hook> c);
  void set_router(std::shared_ptr<router> r);
  void add_request_stage(std::shared_ptr<request_stage> s);
  const config& cfg() const noexcept;
  // The deployments of a model name (empty when unknown).
  std::span<const deployment> deployments_of(std::string_view model) const;

  // Binds (port 0 picks one) and serves on background threads; returns the port.
  result<uint16_t> start();
  // Binds and serves on the calling thread until stop() (e.g. from a signal handler thread).
  result<void> run();
  void stop();  // graceful (see server_options::shutdown_grace)
  void wait();  // joins the background thread of start()

  struct impl;

 private:
  explicit gateway(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace fp::gateway
