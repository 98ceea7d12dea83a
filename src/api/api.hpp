// Public header of src/api (fp_api): the wire formats. Parsing and printing of OpenAI
// chat/completions and legacy completions requests, responses and stream chunks, the SSE framing,
// chunk <-> response conversion (for the cache), and the Anthropic Messages API translation.
// No Asio here: everything is plain functions and small incremental state machines, so it can be
// unit-tested and fuzzed byte by byte.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.hpp"
#include "common/common.hpp"

namespace fp::api {

// ---- requests -----------------------------------------------------------------------------------

// Parses and validates a client request body (POST /v1/chat/completions or /v1/completions).
// Malformed JSON -> errc::invalid_request whose message names the byte offset and line:col.
// Wrong types of the fields the gateway reads -> errc::invalid_request naming the field.
// The body text is kept in request::raw_body for pass-through; request::body() builds the JSON
// object from it on first use.
result<request> parse_openai_request(std::string_view body, endpoint kind = endpoint::chat_completions);
// The same, taking over the body's buffer (no copy).
result<request> parse_owned_openai_request(std::string&& body, endpoint kind = endpoint::chat_completions);
// The reference implementation the two above fall back to (the whole Boost.JSON tree, every
// error worded); for tests and the differential fuzz target.
result<request> parse_openai_request_reference(std::string_view body, endpoint kind = endpoint::chat_completions);

// finish_reason from its OpenAI name ("stop", "length", "tool_calls", "content_filter",
// "function_call" -> tool_calls); none for anything else.
finish_reason finish_reason_from_name(std::string_view s) noexcept;

// ---- errors -------------------------------------------------------------------------------------

// The OpenAI error type string for an error code ("invalid_request_error", "server_error", ...).
std::string_view openai_error_type(errc c) noexcept;
// {"error":{"message":"...","type":"...","param":null,"code":...}}
std::string openai_error_json(const error& e);
// An upstream's error answer (status + body in either wire format) as an fp::error carrying the
// upstream's message and status (errc::upstream_error, or rate_limited for 429).
error upstream_error_from_body(int http_status, std::string_view body, wire_format f);

// ---- JSON helpers -------------------------------------------------------------------------------

// Appends s as a JSON string literal (with quotes) to out.
void append_json_string(std::string& out, std::string_view s);

// ---- SSE ----------------------------------------------------------------------------------------

struct sse_event {
  std::string event;  // "" when the event had no `event:` line
  std::string data;   // data lines joined with '\n'
  bool done() const noexcept { return data == "[DONE]"; }
};

// An event as views (see sse_parser::next(sse_event&, sse_event_view&)).
struct sse_event_view {
  std::string_view event;
  std::string_view data;
  bool done() const noexcept { return data == "[DONE]"; }
};

// Incremental Server-Sent-Events parser: feed arbitrary byte splits, pull complete events.
// Handles \n, \r\n and \r line ends, multi-line data, comments (": ping"), `id:`/`retry:` (ignored),
// a leading BOM, and a size limit on a single event.
class sse_parser {
 public:
  explicit sse_parser(size_t max_event_bytes = 8 << 20) : max_event_bytes_(max_event_bytes) {}
  // Appends bytes. Returns false once an event exceeded the size limit (the parser is then dead).
  bool feed(std::string_view bytes);
  // The same without copying `bytes` when nothing is buffered: the parser reads them in place, so
  // they must stay valid until next() returns false (it copies what is left of them then) or
  // reset(). Views from next(storage, view) may point into them.
  bool feed_view(std::string_view bytes);
  // Moves the next complete event into `out`; false when none is complete yet.
  bool next(sse_event& out);
  // The same without copying the common event: one `data:` line and its blank line, both already
  // buffered, comes back as a view into the parser's buffer; any other event is assembled in
  // `storage` and `out` views that. The views stay valid until the next next(), feed() or reset()
  // (and, after feed_view(), while its bytes are).
  bool next(sse_event& storage, sse_event_view& out);
  // Bytes buffered but not yet part of a complete event.
  size_t pending_bytes() const noexcept { return (ext_on_ ? ext_.size() : buf_.size()) - pos_; }
  bool failed() const noexcept { return failed_; }
  // Back to the start of a new stream, keeping the buffers' memory.
  void reset() noexcept {
    buf_.clear();
    ext_ = {};
    ext_on_ = false;
    pos_ = 0;
    failed_ = false;
    bom_checked_ = false;
    pending_cr_ = false;
    cur_.event.clear();
    cur_.data.clear();
    cur_has_data_ = false;
  }

 private:
  std::string buf_;
  std::string_view ext_;  // the bytes of a feed_view() being read in place (then buf_ is empty)
  bool ext_on_ = false;
  size_t pos_ = 0;  // start of unconsumed bytes in buf_ (in ext_ while ext_on_)

  void absorb();
  size_t max_event_bytes_;
  bool failed_ = false;
  bool bom_checked_ = false;
  bool pending_cr_ = false;  // the last consumed line ended in '\r' (a '\n' may follow)
  sse_event cur_;
  bool cur_has_data_ = false;
};

// Frames one JSON text as an SSE data event: "data: <json>\n\n" appended to out.
void append_sse_data(std::string& out, std::string_view json);
inline constexpr std::string_view sse_done = "data: [DONE]\n\n";

// ---- chunks -------------------------------------------------------------------------------------

// Identity of one completion: the same in every chunk of a stream.
struct chunk_meta {
  std::string id;        // "chatcmpl-..." / "cmpl-..."
  int64_t created = 0;   // unix seconds
  std::string model;
  std::string system_fingerprint;  // omitted when empty
};

struct tool_call_delta {
  int index = 0;
  std::string_view id;         // only in the first delta of a call
  std::string_view name;       // only in the first delta of a call
  std::string_view arguments;  // a fragment of the JSON arguments
};

// What one chunk carries (choice 0). Everything is optional.
struct chunk_delta {
  std::string_view role;                      // "assistant" in the first chunk
  std::optional<std::string_view> content;    // text delta
  std::span<const tool_call_delta> tool_calls;
  finish_reason finish = finish_reason::none;
};

// A `chat.completion.chunk` JSON text for the delta (with "usage":null omitted).
std::string make_chat_chunk_json(const chunk_meta& m, const chunk_delta& d);
// The include_usage chunk: "choices":[] and the usage object.
std::string make_usage_chunk_json(const chunk_meta& m, const usage& u, endpoint kind = endpoint::chat_completions);
// A legacy `text_completion` chunk.
std::string make_completion_chunk_json(const chunk_meta& m, std::string_view text, finish_reason f);
// The same, as an api::chunk with the parsed fields filled in (no re-parse needed).
chunk make_chat_chunk(const chunk_meta& m, const chunk_delta& d);
chunk make_usage_chunk(const chunk_meta& m, const usage& u, endpoint kind = endpoint::chat_completions);
chunk make_completion_chunk(const chunk_meta& m, std::string_view text, finish_reason f);

// Fast path: extracts only content (choices[0].delta.content or choices[0].text), finish_reason,
// usage and the presence of tool_calls from one chunk's JSON (the text after "data: "). Keeps the
// JSON text in chunk::json. An {"error":...} object -> errc::upstream_error with its message.
result<chunk> parse_openai_chunk(std::string_view data);
// The same into an existing chunk, reusing its strings' buffers (for batches kept across reads).
result<void> parse_openai_chunk_into(std::string_view data, chunk& out);
// parse_openai_chunk_into() for the chunks of one stream, in order: it remembers the start of the
// last chunk it scanned (the fields before "choices": id, object, created, model, the same in
// every chunk of a stream) and, when the next chunk starts with the same bytes, only compares
// them. The same results and errors as parse_openai_chunk_into().
// A chunk that differs from the last scanned one only in its content string (the same bytes
// before and after it) has only that string read.
class openai_chunk_parser {
 public:
  result<void> parse_into(std::string_view data, chunk& out);
  // For a new stream (keeps the buffers' memory).
  void reset() noexcept {
    prefix_.clear();
    same_shape_.on = false;
  }

 private:
  std::string prefix_;  // a start of a chunk the scanner took, up to a ',' between root fields
  struct {
    bool on = false;
    std::string text;              // a chunk the scanner took whose content came from one string
    size_t content_at = 0;         // that string token's bytes in text: [content_at, content_end)
    size_t content_end = 0;
    finish_reason finish = finish_reason::none;  // what else text gave
    std::optional<api::usage> usage;
    bool has_tool_calls = false;
  } same_shape_;
};
// The reference the three above fall back to for anything their single-pass scanner does not take
// (every error, escaped keys, deep nesting, ...): the simdjson On-Demand reader. The same results
// and errors by contract; for tests and the differential fuzz target.
result<void> parse_openai_chunk_reference_into(std::string_view data, chunk& out);

// The usage object of OpenAI JSON ({"prompt_tokens":..,"completion_tokens":..,
// "prompt_tokens_details":{"cached_tokens":..}}), appended to out.
void append_usage_json(std::string& out, const usage& u);

// ---- chunk sequence <-> complete response (the cache needs both) --------------------------------

// Turns the chunks of a stream into the non-streamed response: content and tool_calls merged by
// index, finish_reason, usage, logprobs (if present), per choice. Works for chat.completion.chunk
// (-> chat.completion) and text_completion chunks (-> text_completion).
class chunk_aggregator {
 public:
  // Adds one chunk's JSON. Invalid JSON -> error (the aggregator keeps its state).
  result<void> add(std::string_view chunk_json);
  result<void> add(const chunk& c) { return add(c.json); }
  // The complete response (object "chat.completion" or "text_completion").
  response finish() const;

 private:
  struct tool_call_acc {
    std::string id, type, name, arguments;
  };
  struct choice_acc {
    int64_t index = 0;
    std::string role;
    std::string content;
    bool has_content = false;
    std::string refusal;
    bool has_refusal = false;
    std::vector<std::pair<int64_t, tool_call_acc>> tool_calls;  // by tool-call index, in order seen
    std::string finish;
    boost::json::array logprobs_content;
    bool has_logprobs = false;
    boost::json::value text_logprobs;  // legacy completions logprobs (last one wins)
  };
  choice_acc& choice(int64_t index);
  std::string id_, model_, fingerprint_;
  int64_t created_ = 0;
  bool text_completion_ = false;
  std::vector<choice_acc> choices_;
  std::optional<usage> usage_;
  boost::json::value usage_json_;  // kept verbatim (details objects)
};

// Splits a complete response (chat.completion or text_completion JSON) into the chunk sequence a
// stream would have carried: role chunk, content (in pieces of at most max_piece_bytes bytes
// split at UTF-8 boundaries; 0 = one piece), tool calls, finish chunk, and (if include_usage and
// the response has usage) the usage chunk. Does not include [DONE].
result<std::vector<chunk>> response_to_chunks(std::string_view response_json, bool include_usage,
                                              size_t max_piece_bytes = 0);

// Builds a complete response JSON from parts (used by non-streaming providers and the mock).
struct tool_call {
  std::string id, name, arguments;
};
std::string make_chat_response_json(const chunk_meta& m, std::string_view content,
                                    std::span<const tool_call> tool_calls, finish_reason f,
                                    const usage& u);
std::string make_completion_response_json(const chunk_meta& m, std::string_view text,
                                          finish_reason f, const usage& u);
// Parses a complete OpenAI response (chat.completion or text_completion) into api::response.
result<response> parse_openai_response(std::string_view body);
result<response> parse_owned_openai_response(std::string&& body);  // the same, keeping the buffer as json
// The reference the two above fall back to for anything their single-pass scanner (the stream
// chunk scanner) does not take: the simdjson On-Demand reader. The same results and errors by
// contract; for tests and the differential fuzz target.
result<response> parse_openai_response_reference(std::string&& body);

// ---- Anthropic Messages API ---------------------------------------------------------------------

inline constexpr int64_t anthropic_default_max_tokens = 4096;

// OpenAI chat request -> /v1/messages request body: system message(s) -> "system", user/assistant
// roles (consecutive same-role turns merged), multi-part content (text, image_url data: URLs ->
// base64 image blocks), assistant tool_calls -> tool_use blocks, role "tool" -> tool_result blocks
// in a user turn, tools and tool_choice, max_tokens (default anthropic_default_max_tokens),
// stop -> stop_sequences, temperature, top_p, stream, user -> metadata.user_id.
// `upstream_model` replaces the model name when not empty.
result<std::string> anthropic_request_json(const request& req, std::string_view upstream_model = {});

// Anthropic stop_reason -> OpenAI finish reason (end_turn/stop_sequence -> stop,
// max_tokens -> length, tool_use -> tool_calls, refusal -> content_filter).
finish_reason anthropic_stop_reason(std::string_view s) noexcept;

// Incremental translator of Anthropic SSE events into OpenAI chat.completion.chunk chunks.
// Feed each SSE event (name + data); appended chunks go to `out`. message_stop ends the stream
// (done() turns true); the caller then sends [DONE]. An `error` event -> an error result
// (errc::upstream_error, or rate_limited for overloaded/rate-limit errors).
class anthropic_stream_translator {
 public:
  // model: the model name to report in chunks (the client's); include_usage: emit the usage chunk.
  anthropic_stream_translator(std::string model, bool include_usage, int64_t created_unix_s = 0);
  result<void> on_event(std::string_view event, std::string_view data, std::vector<chunk>& out);
  bool done() const noexcept { return done_; }
  const usage& final_usage() const noexcept { return usage_; }
  finish_reason finish() const noexcept { return finish_; }

 private:
  chunk_meta meta_;
  bool include_usage_;
  bool done_ = false;
  bool started_ = false;
  usage usage_;
  finish_reason finish_ = finish_reason::none;
  int tool_index_ = -1;  // OpenAI tool_calls index of the current tool_use block
  int64_t block_index_ = -1;
  bool block_is_tool_ = false;
  std::string tool_id_, tool_name_;
};

// A non-streamed /v1/messages response -> OpenAI chat.completion response.
result<response> anthropic_response_to_openai(std::string_view body, std::string_view model,
                                              int64_t created_unix_s = 0);

}  // namespace fp::api
