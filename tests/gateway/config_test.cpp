// Config loading and validation: every error names the field.
#include <gtest/gtest.h>

#include <cstdlib>

#include "gateway/gateway.hpp"

namespace fp::gateway {
namespace {

std::string err(std::string_view yaml) {
  auto c = config_from_yaml(yaml);
  return c ? std::string() : c.error().message;
}

TEST(GatewayConfig, EmptyIsValidAndHasDefaults) {
  auto c = config_from_yaml("");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.port, 8080);
  EXPECT_TRUE(c->access_log);
  EXPECT_EQ(c->default_timeouts.first_byte.count(), 60000);
}

TEST(GatewayConfig, FullExample) {
  setenv("FP_CFG_TEST_KEY", "sk-secret", 1);
  setenv("FP_CFG_TEST_GW_KEYS", "a, b ,c", 1);
  auto c = config_from_yaml(R"(
server: {host: 0.0.0.0, port: 9000, threads: 3, max_body_bytes: 2048, read_timeout_ms: 100}
auth: {api_keys_env: FP_CFG_TEST_GW_KEYS}
log: {level: warn, access_log: false}
timeouts: {first_byte_ms: 1234}
providers:
  - name: up
    kind: openai
    base_url: https://api.example.com/v1
    api_key_env: FP_CFG_TEST_KEY
    headers: {OpenAI-Organization: org-1}
    timeouts: {total_ms: 999}
models:
  - {name: a, provider: up, upstream_model: real-a}
  - name: b
    deployments: [{provider: up}, {provider: up, upstream_model: x}]
)");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server.host, "0.0.0.0");
  EXPECT_EQ(c->server.port, 9000);
  EXPECT_EQ(c->server.threads, 3);
  EXPECT_EQ(c->server.max_body_bytes, 2048u);
  EXPECT_EQ(c->api_keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(c->access_log);
  ASSERT_EQ(c->providers.size(), 1u);
  EXPECT_EQ(c->providers[0].spec.api_key, "sk-secret");
  EXPECT_EQ(c->providers[0].t.first_byte.count(), 1234);  // inherited from `timeouts`
  EXPECT_EQ(c->providers[0].t.total.count(), 999);
  ASSERT_EQ(c->models.size(), 2u);
  EXPECT_EQ(c->models[0].deployments[0].upstream_model, "real-a");
  EXPECT_EQ(c->models[1].deployments.size(), 2u);
}

TEST(GatewayConfig, ErrorsNameTheField) {
  EXPECT_EQ(err("server: {prot: 1}").rfind("server.prot: unknown field", 0), 0u) << err("server: {prot: 1}");
  EXPECT_NE(err("server: {port: 70000}").find("server.port"), std::string::npos);
  EXPECT_NE(err("server: {port: abc}").find("server.port: has the wrong type"), std::string::npos);
  EXPECT_NE(err("providers: [{name: x, kind: nope}]").find("providers[0].kind"), std::string::npos);
  EXPECT_NE(err("providers: [{name: x, kind: openai, base_url: ftp://x}]").find("providers[0].base_url"),
            std::string::npos);
  EXPECT_NE(err("providers: [{name: x, kind: openai}, {name: x, kind: openai}]").find("providers[1].name"),
            std::string::npos);
  EXPECT_NE(err("providers: [{name: x, kind: openai}]\nmodels: [{name: m, provider: y}]")
                .find("models[0].deployments[0].provider"),
            std::string::npos);
  EXPECT_NE(err("models: [{name: m}]").find("models[0]"), std::string::npos);
  EXPECT_NE(err("log: {level: loud}").find("log.level"), std::string::npos);
  EXPECT_NE(err("timeouts: {connect_ms: 0}").find("timeouts.connect_ms"), std::string::npos);
  EXPECT_NE(err("auth: {api_keys_env: FP_CFG_TEST_SURELY_UNSET}").find("auth.api_keys_env"), std::string::npos);
  EXPECT_NE(err("bogus: 1").find("bogus"), std::string::npos);
  EXPECT_NE(err("server: [1, 2").find("line"), std::string::npos);  // YAML syntax error with position
  EXPECT_NE(err("providers: [{name: l, kind: local}]").find("providers[0].model_path"), std::string::npos);
}

TEST(GatewayConfig, OtherComponentsSectionsAreKept) {
  auto c = config_from_yaml("cache: {enabled: true}\nrouting: {}\n");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->yaml);
}

TEST(GatewayConfig, DefaultConfigModelsResolve) {
  auto c = default_config("");
  for (const auto& m : c.models) {
    ASSERT_FALSE(m.deployments.empty());
    bool found = false;
    for (const auto& p : c.providers) found = found || p.spec.name == m.deployments[0].provider;
    EXPECT_TRUE(found) << m.name;
  }
}

}  // namespace
}  // namespace fp::gateway
