// Public header of src/providers (fp_providers): building providers from their configuration.
// The provider interface itself is in providers/provider.hpp. Implementations:
//   openai     any OpenAI-compatible HTTP API (openai.cpp)
//   anthropic  the Anthropic Messages API (anthropic.cpp; translation in src/api)
//   mock       the in-process simulated provider (mock*.cpp)
//   local      the CPU inference engine (local*.cpp, when fp_engine is built)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/common.hpp"
#include "providers/provider.hpp"

namespace fp::providers {

// One `providers:` entry of the gateway config (docs/config/gateway.md).
struct deployment_spec {
  std::string name;      // unique deployment name (metrics label "provider")
  std::string kind;      // "openai" | "anthropic" | "mock" | "local"
  std::string base_url;  // openai: e.g. https://api.openai.com/v1; anthropic: https://api.anthropic.com/v1
  std::string api_key_env;  // environment variable holding the upstream key
  std::string api_key;      // its value, resolved at start-up; never logged or echoed
  std::vector<std::pair<std::string, std::string>> headers;  // extra upstream headers
  size_t max_connections = 64;  // per worker thread
  bool verify_tls = true;
  bool request_usage = true;    // openai: ask for stream_options.include_usage upstream
  std::string anthropic_version = "2023-06-01";
  std::string profile;     // mock: latency profile name
  uint64_t seed = 0;       // mock: random seed (0: fixed default)
  std::string model_path;  // local: GGUF file
  int threads = 0;         // local: compute threads (0: auto)
};

// Builds a provider; errors name the offending field ("providers[name].base_url: ...").
result<std::unique_ptr<provider>> make_provider(const deployment_spec& s);

// Whether this build can make providers of `kind` (mock and local are optional components).
bool provider_kind_available(std::string_view kind) noexcept;

// The individual factories (make_provider dispatches on kind).
result<std::unique_ptr<provider>> make_openai_provider(const deployment_spec& s);
result<std::unique_ptr<provider>> make_anthropic_provider(const deployment_spec& s);

}  // namespace fp::providers
