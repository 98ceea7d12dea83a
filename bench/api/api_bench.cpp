// Per-chunk and per-request costs of the wire-format code on the gateway's hot path.
// Run: build/<dir>/bench/api/api_bench
#include <benchmark/benchmark.h>

#include "api/api.hpp"

namespace {

using namespace fp::api;

chunk_meta meta() {
  chunk_meta m;
  m.id = "chatcmpl-AbCdEf0123456789";
  m.created = 1732900000;
  m.model = "gpt-4o-mini-2024-07-18";
  m.system_fingerprint = "fp_0ba0d124f1";
  return m;
}

std::string chunk_json(std::string_view content) {
  chunk_delta d;
  d.content = content;
  return make_chat_chunk_json(meta(), d);
}

std::string sse_wire(std::string_view content) {
  std::string wire;
  append_sse_data(wire, chunk_json(content));
  return wire;
}

// `text` parsed by parse(text) per iteration, counted as text.size() bytes.
template <class Parse>
void run_parse(benchmark::State& s, const std::string& text, Parse parse) {
  for (auto _ : s) benchmark::DoNotOptimize(parse(text));
  s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * text.size()));
}

void bm_make_chat_chunk_json(benchmark::State& s) {
  auto m = meta();
  chunk_delta d;
  d.content = " streaming";
  for (auto _ : s) benchmark::DoNotOptimize(make_chat_chunk_json(m, d));
}
BENCHMARK(bm_make_chat_chunk_json);

void bm_parse_openai_chunk(benchmark::State& s) {
  run_parse(s, chunk_json(" streaming"), [](const std::string& j) { return parse_openai_chunk(j); });
}
BENCHMARK(bm_parse_openai_chunk);

// The reference (simdjson On-Demand) that parse_openai_chunk_into() falls back to.
void bm_parse_openai_chunk_reference(benchmark::State& s) {
  chunk c;
  run_parse(s, chunk_json(" streaming"), [&c](const std::string& j) { return parse_openai_chunk_reference_into(j, c); });
}
BENCHMARK(bm_parse_openai_chunk_reference);

void bm_parse_openai_chunk_into(benchmark::State& s) {
  chunk c;
  run_parse(s, chunk_json(" streaming"), [&c](const std::string& j) { return parse_openai_chunk_into(j, c); });
}
BENCHMARK(bm_parse_openai_chunk_into);

// The same through the per-stream parser, for a stream's content chunks (the bytes around the
// content string only compared).
void bm_openai_chunk_parser(benchmark::State& s) {
  std::vector<std::string> jsons;
  for (const char* piece : {" streaming", " matters", " for", " perceived latency", ",", " in"})
    jsons.push_back(chunk_json(piece));
  openai_chunk_parser p;
  chunk c;
  size_t i = 0, bytes = 0;
  for (auto _ : s) {
    const auto& json = jsons[i++ % jsons.size()];
    bytes += json.size();
    benchmark::DoNotOptimize(p.parse_into(json, c));
  }
  s.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(bm_openai_chunk_parser);

// A chunk with escapes and non-ASCII text in its content (the unescaping and UTF-8 check).
void bm_parse_openai_chunk_into_escaped(benchmark::State& s) {
  chunk c;
  run_parse(s, chunk_json("line \"one\"\n\u00e9t\u00e9 \xe2\x9c\x93 caf\xc3\xa9"),
            [&c](const std::string& j) { return parse_openai_chunk_into(j, c); });
}
BENCHMARK(bm_parse_openai_chunk_into_escaped);

// What the OpenAI provider does per chunk: read one event in place, take it as a view, parse it
// into a reused chunk.
void bm_stream_chunk(benchmark::State& s) {
  const std::string wire = sse_wire(" streaming");
  sse_parser p;
  sse_event storage;
  sse_event_view e;
  openai_chunk_parser cp;
  chunk c;
  for (auto _ : s) {
    p.feed_view(wire);
    while (p.next(storage, e)) benchmark::DoNotOptimize(cp.parse_into(e.data, c));
  }
  s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * wire.size()));
}
BENCHMARK(bm_stream_chunk);

// The same before: the event copied out, then parsed.
void bm_stream_chunk_copying(benchmark::State& s) {
  const std::string wire = sse_wire(" streaming");
  sse_parser p;
  sse_event e;
  chunk c;
  for (auto _ : s) {
    p.feed(wire);
    while (p.next(e)) benchmark::DoNotOptimize(parse_openai_chunk_reference_into(e.data, c));
  }
  s.SetBytesProcessed(static_cast<int64_t>(s.iterations() * wire.size()));
}
BENCHMARK(bm_stream_chunk_copying);

void bm_sse_parser_event(benchmark::State& s) {
  const std::string wire = sse_wire(" streaming");
  sse_parser p;
  sse_event e;
  for (auto _ : s) {
    p.feed(wire);
    while (p.next(e)) benchmark::DoNotOptimize(e.data.data());
  }
}
BENCHMARK(bm_sse_parser_event);

void bm_parse_openai_request(benchmark::State& s) {
  std::string body = R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":256,"temperature":0.7,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Explain in three sentences why streaming matters for perceived latency in chat applications."}]})";
  run_parse(s, body, [](const std::string& b) { return parse_openai_request(b); });
}
BENCHMARK(bm_parse_openai_request);

// The body `fastpath bench` sends (what bench/gateway/cpu_per_request.sh proxies).
const std::string loadgen_body =
    R"({"messages":[{"role":"user","content":"Write a short story about a robot learning to paint."}],"model":"gpt-4o","stream":false,"max_tokens":20})";

void bm_parse_openai_request_loadgen(benchmark::State& s) {
  run_parse(s, loadgen_body, [](const std::string& b) { return parse_openai_request(b); });
}
BENCHMARK(bm_parse_openai_request_loadgen);

// The reference (Boost.JSON tree) that parse_openai_request() falls back to, on the same body.
void bm_parse_openai_request_loadgen_reference(benchmark::State& s) {
  run_parse(s, loadgen_body, [](const std::string& b) { return parse_openai_request_reference(b); });
}
BENCHMARK(bm_parse_openai_request_loadgen_reference);

// A typical complete (non-streamed) chat.completion response: 20 tokens of content, usage.
std::string typical_response() {
  usage u;
  u.prompt_tokens = 14;
  u.completion_tokens = 20;
  return make_chat_response_json(meta(), "Once upon a time, a small robot named Pix found a brush and a pot of blue paint in the attic.",
                                 {}, finish_reason::length, u);
}

void bm_parse_openai_response(benchmark::State& s) {
  run_parse(s, typical_response(), [](const std::string& j) { return parse_openai_response(j); });
}
BENCHMARK(bm_parse_openai_response);

// The reference (simdjson On-Demand) that parse_openai_response() falls back to.
void bm_parse_openai_response_reference(benchmark::State& s) {
  run_parse(s, typical_response(), [](const std::string& j) { return parse_openai_response_reference(std::string(j)); });
}
BENCHMARK(bm_parse_openai_response_reference);

void bm_anthropic_event(benchmark::State& s) {
  anthropic_stream_translator t("claude", false);
  std::vector<chunk> out;
  std::string_view data = R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" streaming"}})";
  for (auto _ : s) {
    out.clear();
    benchmark::DoNotOptimize(t.on_event("content_block_delta", data, out));
  }
}
BENCHMARK(bm_anthropic_event);

}  // namespace

BENCHMARK_MAIN();
