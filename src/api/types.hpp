// The internal request and chunk types every component shares (the contract between the HTTP
// layer, the gateway pipeline, providers, cache and routing). Wire-format parsing and printing
// lives in src/api/*.cpp; this header stays light (Boost.JSON values, no Asio).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fp::api {

enum class wire_format { openai, anthropic };

enum class finish_reason { none, stop, length, tool_calls, content_filter, error };
std::string_view finish_reason_name(finish_reason f) noexcept;  // "stop", ... ("" for none)

struct usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;  // upstream prompt-cache hits (OpenAI cached_tokens,
                                     // Anthropic cache_read_input_tokens)
  int64_t total() const noexcept { return prompt_tokens + completion_tokens; }
};

enum class endpoint { chat_completions, completions };

// A client request, normalised to the OpenAI chat/completions shape. `body` keeps every field the
// client sent (unknown ones are passed through to OpenAI-compatible upstreams untouched); the
// typed fields are the ones the pipeline reads, extracted once at parse time.
struct request {
  endpoint kind = endpoint::chat_completions;
  boost::json::object body;
  std::string model;          // as the client asked (may be a routing alias)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens
  std::optional<double> temperature;
  std::optional<int64_t> seed;
  int64_t n = 1;
  // The client's body text, exactly as received, while `body` still says the same: an
  // OpenAI-compatible provider then forwards these bytes instead of re-serialising `body`.
  // Anything that changes `body` (or the model sent upstream) must clear it.
  std::string raw_body;
};

// One streamed event, always in OpenAI `chat.completion.chunk` (or `text_completion`) form, however
// the upstream spoke. `json` is the exact text sent after "data: ". The other fields are what the
// gateway needed to parse out of it (and nothing more).
struct chunk {
  std::string json;
  std::string content;  // text delta of choice 0 ("" if none)
  finish_reason finish = finish_reason::none;
  std::optional<api::usage> usage;  // present on the usage chunk
  bool has_tool_calls = false;
};

// A complete (non-streamed) response in OpenAI form.
struct response {
  std::string json;
  std::string content;
  finish_reason finish = finish_reason::none;
  std::optional<api::usage> usage;
};

}  // namespace fp::api
