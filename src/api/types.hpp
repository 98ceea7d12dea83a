// The internal request and chunk types every component shares (the contract between the HTTP
// layer, the gateway pipeline, providers, cache and routing). Wire-format parsing and printing
// lives in src/api/*.cpp; this header stays light (Boost.JSON values, no Asio).
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <atomic>
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

// A client request, normalised to the OpenAI chat/completions shape. The typed fields are the ones
// the pipeline reads, extracted once at parse time. body() is every field the client sent (unknown
// ones are passed through to OpenAI-compatible upstreams untouched) as a JSON object, built from
// raw_body on first use: a request that is only forwarded never builds it.
struct request {
  endpoint kind = endpoint::chat_completions;
  std::string model;          // as the client asked (may be a routing alias)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens
  std::optional<double> temperature;
  std::optional<int64_t> seed;
  int64_t n = 1;
  // What raw_body itself says about streaming (unlike `stream`, which callers may change for an
  // upstream call): an OpenAI-compatible provider forwards raw_body only when it says what that
  // call needs.
  struct raw_stream_fields {
    enum class state : uint8_t { absent, is_false, is_true, is_null };
    state stream = state::absent;  // "stream"
    bool has_options = false;      // "stream_options" present, with any value
    bool include_usage = false;    // stream_options.include_usage is true
  } raw_stream;
  // The client's body text, exactly as received, while the body is unchanged: an
  // OpenAI-compatible provider then forwards these bytes instead of re-serialising body().
  // mutable_body() and set_body() clear it.
  std::string raw_body;

  // The body object (parsed from raw_body the first time; an empty object if there is neither).
  const boost::json::object& body() const;
  // The body for changing: raw_body no longer says the same and is cleared.
  boost::json::object& mutable_body();
  void set_body(boost::json::object b);
  bool body_built() const noexcept { return body_.get() != nullptr; }

 private:
  // The built tree. body() is const and may run on several threads reading one request (a cache
  // flight's followers do): the first build to finish is published with one compare-exchange and
  // the others drop theirs. Copies copy the tree (its storage, the request's arena, is shared).
  class lazy_object {
   public:
    lazy_object() = default;
    lazy_object(const lazy_object& o) : p_(o.get() ? new boost::json::object(*o.get()) : nullptr) {}
    lazy_object(lazy_object&& o) noexcept : p_(o.p_.exchange(nullptr, std::memory_order_acq_rel)) {}
    lazy_object& operator=(const lazy_object& o) {
      if (this != &o) reset(o.get() ? new boost::json::object(*o.get()) : nullptr);
      return *this;
    }
    lazy_object& operator=(lazy_object&& o) noexcept {
      if (this != &o) reset(o.p_.exchange(nullptr, std::memory_order_acq_rel));
      return *this;
    }
    ~lazy_object() { delete p_.load(std::memory_order_relaxed); }
    boost::json::object* get() const noexcept { return p_.load(std::memory_order_acquire); }
    void reset(boost::json::object* n) noexcept { delete p_.exchange(n, std::memory_order_acq_rel); }
    // Publishes n unless another thread published first; returns the published one.
    boost::json::object& publish(boost::json::object* n) const noexcept {
      boost::json::object* expected = nullptr;
      if (p_.compare_exchange_strong(expected, n, std::memory_order_acq_rel)) return *n;
      delete n;
      return *expected;
    }

   private:
    mutable std::atomic<boost::json::object*> p_{nullptr};
  };
  lazy_object body_;
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
