#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "routing/routing.hpp"

using namespace fp::routing;

TEST(Config, ParsesAFullSection) {
  auto n = YAML::Load(R"(
aliases:
  - name: auto
    tiers:
      - {name: small, model: m-small, below: 0.3}
      - {name: mid, model: m-mid, up_to: 0.7}
      - {name: strong, model: m-strong}
scorer:
  bias: -1
  weights: {proof: 3.5}
models:
  - name: m-mid
    deployments: [a, {name: b, weight: 2, upstream_model: real-mid}]
    fallbacks: [m-small]
  - name: m-small
    balance: prefix_affinity
    deployments: [c]
retries: {max_attempts: 4, budget_ratio: 0.1}
hedging: {enabled: true, delay_ms: 250, budget_ratio: 0.05}
health: {breaker: {consecutive_failures: 2, open_ms: 100}}
rate_limits:
  backend: local
  default: {requests_per_minute: 10}
  keys:
    - {key_id: abc, tokens_per_minute: 1000}
)");
  auto c = parse_routing_config(n);
  ASSERT_NE(c.find_alias("auto"), nullptr);
  EXPECT_EQ(c.find_alias("auto")->tiers.pick(0.1).model, "m-small");
  EXPECT_EQ(c.find_alias("auto")->tiers.pick(0.7).model, "m-mid");
  EXPECT_EQ(c.find_alias("auto")->tiers.pick(0.9).model, "m-strong");
  EXPECT_EQ(c.scorer.bias, -1);
  EXPECT_EQ(c.scorer.w[static_cast<size_t>(feature::proof)], 3.5);
  ASSERT_NE(c.find_model("m-mid"), nullptr);
  EXPECT_EQ(c.find_model("m-mid")->deployments[1].weight, 2);
  EXPECT_EQ(c.find_model("m-mid")->deployments[1].upstream_model, "real-mid");
  EXPECT_EQ(c.find_model("m-small")->mode, balance_mode::prefix_affinity);
  EXPECT_EQ(c.retries.max_attempts, 4);
  EXPECT_EQ(c.retries.budget.ratio, 0.1);
  EXPECT_TRUE(c.hedging.enabled);
  EXPECT_EQ(c.hedging.delay_ms, 250);
  EXPECT_EQ(c.health.breaker.consecutive_failures, 2);
  EXPECT_EQ(c.rate_limits.defaults.requests_per_minute, 10);
  ASSERT_EQ(c.rate_limits.keys.size(), 1u);
}

TEST(Config, RejectsBadValues) {
  EXPECT_THROW(parse_routing_config(YAML::Load("models: [{name: x, deployments: []}]")), std::runtime_error);
  EXPECT_THROW(parse_routing_config(YAML::Load("models: [{name: x, deployments: [a], fallbacks: [nope]}]")),
               std::runtime_error);
  EXPECT_THROW(parse_routing_config(YAML::Load("scorer: {weights: {nonsense: 1}}")), std::runtime_error);
  EXPECT_THROW(parse_routing_config(YAML::Load("aliases: [{name: a, tiers: [{model: x}, {model: y}]}]")),
               std::runtime_error);
  EXPECT_THROW(parse_routing_config(YAML::Load("rate_limits: {backend: redis}")), std::runtime_error);
}
