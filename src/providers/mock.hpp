// The simulated upstream: latency profiles, deterministic generated text, the in-process mock
// provider, and the standalone `fastpath mock` server (mock_server.cpp) that speaks the OpenAI or
// Anthropic wire format over real sockets. See docs/design/api.md ("mock") for the knobs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"
#include "common/common.hpp"
#include "providers/provider.hpp"
#include "providers/providers.hpp"

namespace fp::providers {

// A latency profile. Times are drawn per request: TTFT from a lognormal fitted to p50/p95, the
// decode rate from a lognormal around tokens_per_s_p50 (spread tokens_per_s_sigma), each
// inter-token gap jittered by +-jitter (relative). A fraction tail_fraction of requests is
// tail_multiplier times slower (TTFT and gaps). error_rate: fraction of requests answered with
// HTTP 500 before any byte; stall_rate: fraction of streams that pause stall_ms mid-stream.
struct mock_profile {
  std::string name;
  double ttft_p50_ms = 0;
  double ttft_p95_ms = 0;
  double tokens_per_s_p50 = 0;  // 0: no delay between tokens
  double tokens_per_s_sigma = 0;
  double jitter = 0;
  double tail_fraction = 0;
  double tail_multiplier = 1;
  double error_rate = 0;
  double stall_rate = 0;
  double stall_ms = 0;
  int64_t output_tokens = 20;  // when the request does not limit it (max_tokens caps it)
};

// Built-in profiles: gpt-4o, gpt-4o-mini, claude-3-haiku, local-7b, zero, tail.
std::vector<std::string> mock_profile_names();
result<mock_profile> find_mock_profile(std::string_view name);

// Per-request overrides (all optional), from the request body field "mock" (an object with these
// keys) or x-mock-* headers in the standalone server (x-mock-ttft-ms, ...). See docs/design/api.md.
struct mock_overrides {
  std::optional<double> ttft_ms;
  std::optional<double> itl_ms;         // fixed gap between tokens
  std::optional<int64_t> output_tokens;
  int error_status = 0;                 // answer with this HTTP status (429 adds Retry-After)
  int64_t error_after = -1;             // fail mid-stream after this many tokens (error event)
  int64_t stall_after = -1;             // pause stall_ms after this many tokens
  double stall_ms = 0;
  int64_t disconnect_after = -1;        // server: drop the connection after this many tokens
  std::optional<bool> tool_call;        // force / suppress a tool call (needs tools)
  bool echo = false;                    // content = the last user message's text
};

// Reads the "mock" object of a request body (absent: all defaults). Type errors -> invalid_request.
result<mock_overrides> mock_overrides_from_body(const boost::json::object& body);

// Everything the simulation decided for one request.
struct mock_plan {
  int64_t ttft_ns = 0;
  std::vector<int64_t> gaps_ns;     // gaps_ns[i]: wait before token i+1 (size output_tokens)
  std::vector<std::string> tokens;  // the text pieces, in order
  bool tool_call = false;
  std::string tool_name, tool_id, tool_arguments;
  api::finish_reason finish = api::finish_reason::stop;
  int error_status = 0;
  int64_t error_after = -1;
  int64_t stall_after = -1;
  int64_t stall_ns = 0;
  int64_t disconnect_after = -1;
  int64_t prompt_tokens = 0;
  int64_t total_ns() const noexcept;
};

// What the planner needs to know of the request, in either wire format.
struct mock_request_view {
  std::string_view prompt_text;      // concatenated prompt (user/system) text: seeds the text
  std::string_view last_user_text;   // for echo and the tool-call trigger
  std::optional<int64_t> max_tokens;
  bool has_tools = false;
  std::string first_tool_name;       // the forced tool if tool_choice names one, else the first
  bool tool_choice_forces = false;   // "required" / {"type":"function"...} / Anthropic any|tool
  bool tool_choice_none = false;
};

// Extracts the view from an OpenAI chat/completions request body.
mock_request_view mock_view_of_openai(const api::request& req, std::string& storage_prompt,
                                      std::string& storage_last_user);

// Deterministic: same (profile, seed, sequence number, request) -> same plan.
mock_plan make_mock_plan(const mock_profile& p, uint64_t seed, uint64_t seq, const mock_request_view& v,
                         const mock_overrides& o);

// The in-process provider (kind "mock"): timers on the caller's executor; honours cancellation.
result<std::unique_ptr<provider>> make_mock_provider(const deployment_spec& s);

// ---- the standalone server ----------------------------------------------------------------------

struct mock_server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string profile = "zero";
  api::wire_format format = api::wire_format::openai;
  uint64_t seed = 1;
  int threads = 1;
  size_t max_body_bytes = 16 << 20;
};

// Runs until SIGINT/SIGTERM. Prints "listening HOST:PORT" as the first stdout line once bound.
// Returns the process exit code.
int run_mock_server(const mock_server_options& o);

}  // namespace fp::providers
