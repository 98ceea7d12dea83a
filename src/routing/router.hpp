// The gateway integration of fp_routing: a request stage (per-key rate limits, routing aliases) and
// a gateway::router (balancing, breakers, retries/fallbacks, hedging, prefix affinity).
// Included through routing/routing.hpp; the gateway types are only forward-declared here.
#pragma once

#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/common.hpp"
#include "routing/config.hpp"

namespace fp::gateway {
class gateway;
class request_stage;
class router;
struct deployment;
}  // namespace fp::gateway

namespace fp::routing {

// The texts of a chat request the scorer and the limiter need.
struct request_text {
  std::string last_user;  // the task
  std::string system;     // system/developer messages, joined
  size_t prompt_chars = 0;
  int turns = 0;          // user + assistant messages
  int tools = 0;
};
request_text extract_request_text(const boost::json::object& openai_body);

using lookup_fn = std::function<std::span<const gateway::deployment>(std::string_view model)>;

// Shared routing state (health, budgets, limiter, scorer) and the two seams built on it.
class routing_engine {
 public:
  routing_engine(routing_config cfg, lookup_fn lookup, const clock* clk = nullptr);
  ~routing_engine();
  std::shared_ptr<gateway::request_stage> stage() const;
  std::shared_ptr<gateway::router> router() const;
  const routing_config& cfg() const noexcept;
  health_snapshot health(std::string_view deployment) const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

// Reads the `routing:` section of the gateway's config and installs the stage and router.
// Returns nullptr (and changes nothing) when the config has no routing section. Throws
// std::runtime_error on a bad section (start-up only).
std::shared_ptr<routing_engine> attach(gateway::gateway& gw);

}  // namespace fp::routing
