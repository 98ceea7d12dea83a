// The `routing:` section of the fastpath config (documented in docs/config/routing.md).
// Included through routing/routing.hpp. Parsed once at start-up; throws std::runtime_error with a
// clear message on a bad value (start-up only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "routing/balance.hpp"
#include "routing/prompt_cache.hpp"
#include "routing/rate_limit.hpp"
#include "routing/scorer.hpp"

namespace YAML {
class Node;
}

namespace fp::routing {

// A routing alias: a model name clients may ask for ("auto") that the scorer resolves to a tier.
struct alias_config {
  std::string name;
  tier_map tiers;
};

struct deployment_ref {
  std::string name;            // a deployment (provider instance) name from the gateway config
  double weight = 1.0;
  std::string upstream_model;  // model name to send upstream ("" = the group name)
};

enum class balance_mode { latency, prefix_affinity };

// A model name that maps to several deployments, with the fallback chain tried after them.
struct model_group {
  std::string name;
  std::vector<deployment_ref> deployments;
  std::vector<std::string> fallbacks;  // other model groups, in order
  balance_mode mode = balance_mode::latency;
};

struct retry_config {
  int max_attempts = 3;                 // upstream attempts per request (first + retries)
  budget_config budget{0.2, 1.0, 20};   // retries per request, reserve per second, burst
  int64_t first_byte_timeout_ms = 0;    // 0: the provider's own (call_options)
  double max_retry_after_s = 5;         // honour a 429 Retry-After up to this long, else move on
};

struct hedge_config {
  bool enabled = false;
  int64_t delay_ms = 0;        // 0: the deployment's p95 TTFT (once known), else default_delay_ms
  int64_t default_delay_ms = 500;
  int64_t min_delay_ms = 20;
  budget_config budget{0.1, 0.0, 10};  // at most ~10% extra upstream requests
};

struct affinity_config {
  double load_factor = 1.25;   // bounded-load constant c (>1)
  size_t prefix_bytes = 2048;
  size_t min_bytes = 512;
};

struct rate_limit_config {
  std::string backend = "local";  // local | redis
  std::string redis_url;          // when backend = redis
  rate_limit defaults;            // for every key without its own entry
  std::vector<std::pair<std::string, rate_limit>> keys;  // key_id(api key) -> limit
  int64_t default_output_tokens = 256;  // charged at admission when max_tokens is absent
};

struct routing_config {
  std::vector<alias_config> aliases;
  scorer_weights scorer = scorer_weights::defaults();
  std::vector<model_group> models;
  retry_config retries;
  hedge_config hedging;
  health_config health;
  affinity_config affinity;
  prompt_cache_config prompt_cache;
  rate_limit_config rate_limits;
  bool route_header = true;  // x-fastpath-route response header

  const alias_config* find_alias(std::string_view model) const noexcept;
  const model_group* find_model(std::string_view model) const noexcept;
};

// From the node holding the routing settings (the `routing:` map itself).
routing_config parse_routing_config(const YAML::Node& n);
// From a config file: its `routing:` section (or the whole file when it has none).
routing_config load_routing_config_file(const std::string& path);

}  // namespace fp::routing
