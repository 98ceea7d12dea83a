// Differential libFuzzer target: the single-pass chunk scanner (parse_openai_chunk_into and the
// per-stream openai_chunk_parser) against the simdjson reference (parse_openai_chunk_reference_into)
// on the same bytes, the complete-response parser (parse_openai_response) against
// parse_openai_response_reference, and the SSE parser's view-returning next() against the copying
// one. Any difference in the result, the error (code, message, status) or an extracted field aborts.
// The first byte picks where the fuzz bytes go: as they are, inside a content string, inside the
// first choice, inside usage, or after the repeated start of a stream's chunks. Also: two chunks
// of one shape that differ in the content token.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "api/api.hpp"

namespace {

using namespace fp::api;

[[noreturn]] void differ(const char* what) {
  __builtin_printf("fuzz_chunk_diff: %s differs\n", what);
  std::abort();
}

void same(const fp::result<void>& a, const chunk& ca, const fp::result<void>& b, const chunk& cb) {
  if (a.has_value() != b.has_value()) differ("success");
  if (!a) {
    if (a.error().code != b.error().code) differ("error code");
    if (a.error().message != b.error().message) differ("error message");
    if (a.error().http_status != b.error().http_status) differ("error status");
    return;
  }
  if (ca.json != cb.json) differ("json");
  if (ca.content != cb.content) differ("content");
  if (ca.finish != cb.finish) differ("finish");
  if (ca.has_tool_calls != cb.has_tool_calls) differ("has_tool_calls");
  if (ca.usage.has_value() != cb.usage.has_value()) differ("usage presence");
  if (ca.usage && (ca.usage->prompt_tokens != cb.usage->prompt_tokens ||
                   ca.usage->completion_tokens != cb.usage->completion_tokens ||
                   ca.usage->cached_prompt_tokens != cb.usage->cached_prompt_tokens))
    differ("usage");
}

void same_response(const fp::result<response>& a, const fp::result<response>& b) {
  if (a.has_value() != b.has_value()) differ("response success");
  if (!a) {
    if (a.error().code != b.error().code) differ("response error code");
    if (a.error().message != b.error().message) differ("response error message");
    if (a.error().http_status != b.error().http_status) differ("response error status");
    return;
  }
  if (a->json != b->json) differ("response json");
  if (a->content != b->content) differ("response content");
  if (a->finish != b->finish) differ("response finish");
  if (a->usage.has_value() != b->usage.has_value()) differ("response usage presence");
  if (a->usage && (a->usage->prompt_tokens != b->usage->prompt_tokens ||
                   a->usage->completion_tokens != b->usage->completion_tokens ||
                   a->usage->cached_prompt_tokens != b->usage->cached_prompt_tokens))
    differ("response usage");
}

constexpr std::string_view stream_start = R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string text;
  switch (mode % 5) {
    case 0: text = in; break;
    case 1: text = std::string(R"({"choices":[{"delta":{"content":")") + std::string(in) + R"("}}]})"; break;
    case 2: text = std::string(R"({"id":"x","choices":[{)") + std::string(in) + "}]}"; break;
    case 3: text = std::string(R"({"choices":[],"usage":{)") + std::string(in) + "}}"; break;
    default: text = std::string(stream_start) + std::string(in); break;
  }

  chunk ref, fast;
  ref.content = fast.content = "stale";  // a reused chunk: what a parse leaves must not depend on it
  auto r = parse_openai_chunk_reference_into(text, ref);
  same(parse_openai_chunk_into(text, fast), fast, r, ref);
  auto whole = parse_openai_chunk(text);
  chunk w = whole ? *whole : chunk{};
  same(whole ? fp::result<void>{} : fp::result<void>{whole.error()}, w, r, ref);

  // The same bytes as a complete response.
  same_response(parse_openai_response(text), parse_openai_response_reference(std::string(text)));

  // The per-stream parser: after a chunk with the same start (resumes after it), twice in a row
  // (resumes after its own start), and after an unrelated chunk.
  openai_chunk_parser sp;
  chunk first, c;
  (void)sp.parse_into(std::string(stream_start) + R"("choices":[{"index":0,"delta":{"content":"a"}}]})", first);
  same(sp.parse_into(text, c), c, r, ref);
  same(sp.parse_into(text, c), c, r, ref);
  (void)sp.parse_into(R"({"choices":[]})", first);
  same(sp.parse_into(text, c), c, r, ref);

  // Two chunks of one shape around two different raw tokens (the fuzz bytes split in two): the
  // second one takes the per-stream parser's same-shape path.
  {
    size_t half = in.empty() ? 0 : (mode >> 3) % (in.size() + 1);
    std::string_view shape = (mode & 2) ? R"({"id":"x","choices":[{"index":0,"delta":{"content":@},"finish_reason":null}]})"
                                        : R"({"choices":[{"text":@,"finish_reason":"stop"}],"usage":{"prompt_tokens":1}})";
    size_t at = shape.find('@');
    auto fill = [&](std::string_view token) {
      return std::string(shape.substr(0, at)) + std::string(token) + std::string(shape.substr(at + 1));
    };
    std::string first = fill(R"(")" + std::string(in.substr(0, half)) + R"(")"), second = fill(in.substr(half));
    openai_chunk_parser shaped;
    chunk c1, c2, ref2;
    (void)shaped.parse_into(first, c1);
    auto r2 = parse_openai_chunk_reference_into(second, ref2);
    same(shaped.parse_into(second, c2), c2, r2, ref2);
  }

  // SSE: the view-returning next() (after feed_view() or feed()) yields the copying next()'s
  // events, at a split.
  sse_parser a(1 << 16), b(1 << 16);
  std::vector<sse_event> ea;
  std::vector<std::pair<std::string, std::string>> eb;
  size_t cut = in.empty() ? 0 : (mode >> 3) % (in.size() + 1);
  sse_event e, storage;
  sse_event_view v;
  for (auto part : {in.substr(0, cut), in.substr(cut)}) {
    bool fa = a.feed(part), fb = (mode & 4) ? b.feed_view(part) : b.feed(part);
    if (fa != fb) differ("sse feed");
    while (a.next(e)) ea.push_back(e);
    while (b.next(storage, v)) {
      if (v.done() != (v.data == "[DONE]")) differ("sse done");
      eb.emplace_back(v.event, v.data);
    }
    if (a.pending_bytes() != b.pending_bytes()) differ("sse pending bytes");
  }
  if (ea.size() != eb.size()) differ("sse event count");
  for (size_t i = 0; i < ea.size(); ++i) {
    if (ea[i].event != eb[i].first || ea[i].data != eb[i].second) differ("sse event");
  }
  return 0;
}
