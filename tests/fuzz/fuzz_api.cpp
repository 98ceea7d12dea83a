// libFuzzer target for every fp_api parser of outside input: client request bodies, upstream stream
// chunks (fast path and aggregator), SSE framing at arbitrary splits, the Anthropic event
// translator and the complete-response converters. The first byte picks the split point policy.
// Differential: whatever the fast request parser (the strict single-pass scanner) accepts, the
// reference (Boost.JSON tree) accepts with the same typed fields and the same body; errors are the
// reference's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "api/api.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace fp::api;
  if (size == 0) return 0;
  const uint8_t split = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  // Requests: both endpoints, and the Anthropic translation of anything that parsed.
  for (auto kind : {endpoint::chat_completions, endpoint::completions}) {
    auto r = parse_openai_request(in, kind);
    auto ref = parse_openai_request_reference(in, kind);
    if (r.has_value() != ref.has_value()) std::abort();
    if (!r) {
      if (r.error().message != ref.error().message || r.error().code != ref.error().code) std::abort();
      continue;
    }
    auto same_double = [](const std::optional<double>& a, const std::optional<double>& b) {
      return a.has_value() == b.has_value() && (!a || std::memcmp(&*a, &*b, sizeof(double)) == 0);
    };
    if (r->model != ref->model || r->stream != ref->stream || r->include_usage != ref->include_usage ||
        r->max_tokens != ref->max_tokens || !same_double(r->temperature, ref->temperature) || r->seed != ref->seed ||
        r->n != ref->n || r->raw_stream.stream != ref->raw_stream.stream ||
        r->raw_stream.has_options != ref->raw_stream.has_options ||
        r->raw_stream.include_usage != ref->raw_stream.include_usage || r->raw_body != ref->raw_body)
      std::abort();
    if (r->body() != ref->body()) std::abort();
    (void)anthropic_request_json(*r, "m");
  }
  // Chunks and responses.
  (void)parse_openai_chunk(in);
  chunk_aggregator agg;
  (void)agg.add(in);
  (void)agg.finish();
  if (auto chunks = response_to_chunks(in, true, split % 8); chunks) {
    for (const auto& c : *chunks) (void)parse_openai_chunk(c.json);
  }
  (void)parse_openai_response(in);
  (void)anthropic_response_to_openai(in, "m");
  (void)upstream_error_from_body(500, in, wire_format::anthropic);

  // SSE with a split, every event through both translators.
  sse_parser p(1 << 16);
  anthropic_stream_translator t("m", true);
  std::vector<chunk> out;
  size_t cut = in.empty() ? 0 : split % (in.size() + 1);
  sse_event e;
  for (auto part : {in.substr(0, cut), in.substr(cut)}) {
    p.feed(part);
    while (p.next(e)) {
      (void)t.on_event(e.event, e.data, out);
      (void)parse_openai_chunk(e.data);
    }
  }
  return 0;
}
