// The cache as the gateway's cache_hook (the seam in src/gateway/gateway.hpp). Separate from
// cache.hpp so the cache library itself does not need the gateway.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "cache/cache.hpp"
#include "gateway/gateway.hpp"

namespace fp::cache {

// What the cache keys on as "the resolved upstream model": the model's deployments
// ("provider/upstream_model", in order), so an alias pointed elsewhere never serves old answers.
using deployments_fn = std::function<std::span<const gateway::deployment>(std::string_view model)>;

// Builds the hook from the `cache:` section of the gateway config (defaults when absent; an
// `enabled: false` section returns nullptr). Throws std::runtime_error naming a bad field.
std::shared_ptr<gateway::cache_hook> make_gateway_hook(const gateway::config& cfg, deployments_fn deployments,
                                                       const clock& clk = system_clock::instance());
// The same around an existing cache (tests).
std::shared_ptr<gateway::cache_hook> make_gateway_hook(std::shared_ptr<cache> c, deployments_fn deployments);

}  // namespace fp::cache
