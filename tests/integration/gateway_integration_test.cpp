// The gateway over real sockets: `fastpath mock` children (OpenAI and Anthropic wire formats) on
// port 0, the gateway in-process on port 0, a from-scratch blocking client.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <thread>

#include "gateway/gateway.hpp"
#include "harness.hpp"

namespace fp::test {
namespace {



struct env {
  std::unique_ptr<mock_process> oai, ant;
  std::unique_ptr<gateway::gateway> gw;
  uint16_t port = 0;
  std::string skip_reason;
};

env* g_env = nullptr;

std::string test_config(uint16_t oai, uint16_t ant, uint16_t dead) {
  return fmt::format(R"(
server: {{host: 127.0.0.1, port: 0, threads: 2, read_timeout_ms: 300, idle_timeout_ms: 3000,
         max_body_bytes: 65536, max_header_bytes: 4096, shutdown_grace_ms: 5000}}
auth: {{api_keys: []}}
log: {{access_log: false, level: error}}
providers:
  - {{name: oai, kind: openai, base_url: "http://127.0.0.1:{0}/v1", max_connections: 1000,
     timeouts: {{first_byte_ms: 5000, chunk_gap_ms: 5000, total_ms: 60000}}}}
  - {{name: ant, kind: anthropic, base_url: "http://127.0.0.1:{1}/v1", api_key_env: FP_TEST_ANTHROPIC_KEY}}
  - {{name: oai-tight, kind: openai, base_url: "http://127.0.0.1:{0}/v1",
     timeouts: {{connect_ms: 1000, first_byte_ms: 150, chunk_gap_ms: 150, total_ms: 600}}}}
  - {{name: oai-total, kind: openai, base_url: "http://127.0.0.1:{0}/v1",
     timeouts: {{first_byte_ms: 5000, chunk_gap_ms: 5000, total_ms: 600}}}}
  - {{name: dead, kind: openai, base_url: "http://127.0.0.1:{2}/v1", timeouts: {{connect_ms: 1000}}}}
models:
  - {{name: gpt-4o, provider: oai}}
  - {{name: claude, provider: ant, upstream_model: claude-3-haiku-20240307}}
  - {{name: tight, provider: oai-tight}}
  - {{name: total, provider: oai-total}}
  - {{name: dead, provider: dead}}
  - name: fallback
    deployments: [{{provider: dead}}, {{provider: oai}}]
)",
                     oai, ant, dead);
}

class Gateway : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    raise_fd_limit();
    g_env = new env;
    setenv("FP_TEST_ANTHROPIC_KEY", "sk-ant-test-secret", 1);
    g_env->oai = std::make_unique<mock_process>("zero", "openai");
    g_env->ant = std::make_unique<mock_process>("zero", "anthropic");
    if (!g_env->oai->ok() || !g_env->ant->ok()) {
      g_env->skip_reason = "`fastpath mock` not available (build the fastpath binary first)";
      return;
    }
    auto cfg = gateway::config_from_yaml(test_config(g_env->oai->port(), g_env->ant->port(), dead_port()));
    ASSERT_TRUE(cfg) << cfg.error().message;
    auto gw = gateway::gateway::create(std::move(*cfg));
    ASSERT_TRUE(gw) << gw.error().message;
    g_env->gw = std::move(*gw);
    auto port = g_env->gw->start();
    ASSERT_TRUE(port) << port.error().message;
    g_env->port = *port;
  }
  static void TearDownTestSuite() {
    if (g_env->gw) {
      g_env->gw->stop();
      g_env->gw->wait();
    }
    delete g_env;
    g_env = nullptr;
  }
  void SetUp() override {
    if (!g_env->skip_reason.empty()) GTEST_SKIP() << g_env->skip_reason;
  }
  uint16_t port() const { return g_env->port; }
  reply post(std::string_view path, std::string_view body,
             const std::vector<std::pair<std::string, std::string>>& h = {}) {
    return call(port(), "POST", path, body, h);
  }
};

std::string numbered_words(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += fmt::format("{}w{}", i ? " " : "", i);
  return s;
}

std::string chat_body(std::string_view model, std::string_view user, bool stream, std::string_view extra = "") {
  std::string b = fmt::format(R"({{"model":"{}","messages":[{{"role":"user","content":"{}"}}],"stream":{})", model,
                              user, stream ? "true" : "false");
  if (!extra.empty()) b += fmt::format(",{}", extra);
  b += "}";
  return b;
}

// ---- streaming ------------------------------------------------------------------------------------

TEST_F(Gateway, OpenAIStreamArrivesCompleteAndInOrder) {
  std::string words = numbered_words(200);
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", words, true, R"("mock":{"echo":true})"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"].rfind("text/event-stream", 0), 0u);
  EXPECT_EQ(r.headers["x-accel-buffering"], "no");
  EXPECT_TRUE(r.complete);
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    auto v = parse_json(ev[i]);
    ASSERT_TRUE(v.is_object()) << ev[i];
    EXPECT_FALSE(v.as_object().contains("usage") && !v.at("usage").is_null()) << "usage sent without include_usage";
    auto& ch = v.at("choices").as_array();
    if (ch.empty()) continue;
    auto& d = ch[0].at("delta").as_object();
    if (auto* c = d.if_contains("content"); c && c->is_string()) text += c->as_string();
    if (ch[0].at("finish_reason").is_string()) finish = ch[0].at("finish_reason").as_string();
  }
  EXPECT_EQ(text, words);
  EXPECT_EQ(finish, "stop");
}

TEST_F(Gateway, OpenAIStreamIncludeUsageOnlyWhenAsked) {
  auto r = post("/v1/chat/completions",
                chat_body("gpt-4o", "hello", true, R"("stream_options":{"include_usage":true},"max_tokens":7)"));
  ASSERT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  auto u = parse_json(ev[ev.size() - 2]);
  ASSERT_TRUE(u.is_object());
  EXPECT_TRUE(u.at("choices").as_array().empty());
  EXPECT_EQ(u.at("usage").at("completion_tokens").as_int64(), 7);
}

TEST_F(Gateway, LegacyCompletionsStream) {
  auto r = post("/v1/completions", R"({"model":"gpt-4o","prompt":"Once upon","max_tokens":5,"stream":true})");
  ASSERT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.back(), "[DONE]");
  auto v = parse_json(ev[0]);
  EXPECT_EQ(v.at("object").as_string(), "text_completion");
}

TEST_F(Gateway, NonStreamingHasServerTimingAndRequestId) {
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", "hello", false, R"("max_tokens":4)"));
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers["server-timing"].find("gateway;dur="), std::string::npos);
  EXPECT_NE(r.headers["server-timing"].find("total;dur="), std::string::npos);
  EXPECT_FALSE(r.headers["x-request-id"].empty());
  auto v = parse_json(r.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("choices").at(0).at("finish_reason").as_string(), "length");
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 4);
}

TEST_F(Gateway, PassThroughFieldsReachTheUpstream) {
  // tools + tool_choice travel to the OpenAI-compatible upstream untouched; the mock answers with
  // a tool call only if it saw them.
  std::string tools =
      R"("tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required","seed":7,"n":1,"response_format":{"type":"text"})";
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", "weather in Paris?", false, tools));
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = parse_json(r.body);
  auto& ch = v.at("choices").at(0);
  EXPECT_EQ(ch.at("finish_reason").as_string(), "tool_calls");
  EXPECT_EQ(ch.at("message").at("tool_calls").at(0).at("function").at("name").as_string(), "get_weather");
}

// ---- Anthropic translation ------------------------------------------------------------------------

TEST_F(Gateway, AnthropicStreamTextUsageStopReason) {
  std::string words = numbered_words(50);
  auto r = post("/v1/chat/completions",
                chat_body("claude", words, true, R"("stream_options":{"include_usage":true},"mock":{"echo":true})"));
  ASSERT_EQ(r.status, 200) << r.body;
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text, finish;
  int64_t completion = -1;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    auto v = parse_json(ev[i]);
    ASSERT_TRUE(v.is_object()) << ev[i];
    EXPECT_EQ(v.at("object").as_string(), "chat.completion.chunk");
    EXPECT_EQ(v.at("model").as_string(), "claude");
    if (auto* u = v.as_object().if_contains("usage"); u && u->is_object()) completion = u->at("completion_tokens").as_int64();
    auto& ch = v.at("choices").as_array();
    if (ch.empty()) continue;
    if (auto* c = ch[0].at("delta").as_object().if_contains("content"); c && c->is_string()) text += c->as_string();
    if (ch[0].at("finish_reason").is_string()) finish = ch[0].at("finish_reason").as_string();
  }
  EXPECT_EQ(text, words);
  EXPECT_EQ(finish, "stop");
  EXPECT_GT(completion, 0);
}

TEST_F(Gateway, AnthropicStreamToolCall) {
  std::string tools =
      R"("tools":[{"type":"function","function":{"name":"lookup","description":"d","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}],"tool_choice":"required")";
  auto r = post("/v1/chat/completions", chat_body("claude", "find it", true, tools));
  ASSERT_EQ(r.status, 200) << r.body;
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 3u);
  std::string name, args, finish;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    auto v = parse_json(ev[i]);
    auto& ch = v.at("choices").as_array();
    if (ch.empty()) continue;
    auto& d = ch[0].at("delta").as_object();
    if (auto* tc = d.if_contains("tool_calls"); tc && tc->is_array()) {
      auto& f = tc->as_array().at(0).at("function").as_object();
      if (auto* n = f.if_contains("name")) name += n->as_string();
      if (auto* a = f.if_contains("arguments")) args += a->as_string();
    }
    if (ch[0].at("finish_reason").is_string()) finish = ch[0].at("finish_reason").as_string();
  }
  EXPECT_EQ(name, "lookup");
  EXPECT_TRUE(parse_json(args).is_object()) << args;
  EXPECT_EQ(finish, "tool_calls");
}

TEST_F(Gateway, AnthropicNonStreamingRoundTrip) {
  auto r = post("/v1/chat/completions", chat_body("claude", "hello there", false, R"("max_tokens":6)"));
  ASSERT_EQ(r.status, 200) << r.body;
  auto v = parse_json(r.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("choices").at(0).at("finish_reason").as_string(), "length");
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 6);
  EXPECT_GT(v.at("usage").at("prompt_tokens").as_int64(), 0);
  // The upstream key is never echoed.
  EXPECT_EQ(r.body.find("sk-ant-test-secret"), std::string::npos);
}

// ---- cancellation ---------------------------------------------------------------------------------

// The mock's /mock/stats once its counter `field` exceeds `above` (polled up to ~4 s; the last
// reading either way).
boost::json::value mock_stats_when(uint16_t mock_port, std::string_view field, int64_t above) {
  boost::json::value st;
  for (int i = 0; i < 2000; ++i) {
    st = parse_json(call(mock_port, "GET", "/mock/stats").body);
    if (st.is_object() && st.at(field).to_number<int64_t>() > above) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling bound, not a sync point
  }
  return st;
}

TEST_F(Gateway, ClientDisconnectCancelsUpstreamWithin50ms) {
  uint16_t mp = g_env->oai->port();
  auto before = parse_json(call(mp, "GET", "/mock/stats").body);
  ASSERT_TRUE(before.is_object());
  int64_t cancelled0 = before.at("cancelled").to_number<int64_t>();

  int fd = dial(port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, make_request("POST", "/v1/chat/completions",
                                        chat_body("gpt-4o", "go", true, R"("mock":{"itl_ms":200,"output_tokens":200})"))));
  // Read until the first content chunk arrived, then hang up.
  std::string raw;
  char buf[4096];
  while (raw.find("\"content\":\"") == std::string::npos || raw.find("\"content\":\"\"") != std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "stream ended before the first content chunk";
    raw.append(buf, static_cast<size_t>(n));
    if (raw.find("\"content\":\"w") != std::string::npos || raw.size() > 2000) break;
  }
  int64_t closed_ns = mono_ns();
  close(fd);

  // The mock records the moment it saw its client (the gateway) go away.
  boost::json::value after = mock_stats_when(mp, "cancelled", cancelled0);
  ASSERT_GT(after.at("cancelled").to_number<int64_t>(), cancelled0);
  int64_t cancel_ns = after.at("last_cancel_mono_ns").to_number<int64_t>();
  EXPECT_LT(cancel_ns - closed_ns, 50'000'000) << "upstream cancelled " << (cancel_ns - closed_ns) / 1000 << " us after the client left";
}

// A non-streaming request is watched from 50 ms after it started (so a fast answer costs no
// watch): a client that hangs up while the upstream is still thinking cancels it soon after.
TEST_F(Gateway, ClientDisconnectCancelsANonStreamingUpstreamCall) {
  uint16_t mp = g_env->oai->port();
  auto before = parse_json(call(mp, "GET", "/mock/stats").body);
  ASSERT_TRUE(before.is_object());
  int64_t cancelled0 = before.at("cancelled").to_number<int64_t>();
  int64_t requests0 = before.at("requests").to_number<int64_t>();

  int fd = dial(port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, make_request("POST", "/v1/chat/completions",
                                        chat_body("gpt-4o", "go", false, R"("mock":{"ttft_ms":5000})"))));
  // Hang up once the upstream call is under way (the mock counts it).
  mock_stats_when(mp, "requests", requests0);
  int64_t closed_ns = mono_ns();
  close(fd);

  boost::json::value after = mock_stats_when(mp, "cancelled", cancelled0);
  ASSERT_GT(after.at("cancelled").to_number<int64_t>(), cancelled0) << "the upstream call was not cancelled";
  int64_t cancel_ns = after.at("last_cancel_mono_ns").to_number<int64_t>();
  EXPECT_LT(cancel_ns - closed_ns, 250'000'000) << "upstream cancelled " << (cancel_ns - closed_ns) / 1000 << " us after the client left";
}

// ---- timeouts -------------------------------------------------------------------------------------

TEST_F(Gateway, FirstByteTimeoutIs504) {
  auto r = post("/v1/chat/completions", chat_body("tight", "x", false, R"("mock":{"ttft_ms":3000})"));
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_NE(r.body.find("within 150 ms"), std::string::npos) << r.body;
  auto s = post("/v1/chat/completions", chat_body("tight", "x", true, R"("mock":{"ttft_ms":3000})"));
  EXPECT_EQ(s.status, 504) << s.body;  // nothing streamed yet: a plain error response
}

TEST_F(Gateway, ChunkGapTimeoutEndsStreamWithErrorEvent) {
  auto r = post("/v1/chat/completions", chat_body("tight", "x", true, R"("mock":{"itl_ms":2000,"output_tokens":5})"));
  ASSERT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_NE(ev.back(), "[DONE]");
  auto e = parse_json(ev.back());
  ASSERT_TRUE(e.is_object()) << ev.back();
  EXPECT_NE(std::string(e.at("error").at("message").as_string()).find("no data from upstream for 150 ms"), std::string::npos);
}

TEST_F(Gateway, TotalTimeoutEndsStreamWithErrorEvent) {
  auto r = post("/v1/chat/completions", chat_body("total", "x", true, R"("mock":{"itl_ms":100,"output_tokens":40})"));
  ASSERT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_FALSE(ev.empty());
  auto e = parse_json(ev.back());
  ASSERT_TRUE(e.is_object() && e.as_object().contains("error")) << ev.back();
  EXPECT_NE(std::string(e.at("error").at("message").as_string()).find("total timeout of 600 ms"), std::string::npos);
}

TEST_F(Gateway, UnreachableUpstreamIs502AndFallbackRecovers) {
  auto r = post("/v1/chat/completions", chat_body("dead", "x", false));
  EXPECT_EQ(r.status, 502) << r.body;
  auto f = post("/v1/chat/completions", chat_body("fallback", "x", false, R"("max_tokens":3)"));
  EXPECT_EQ(f.status, 200) << f.body;
}

TEST_F(Gateway, ServerReadTimeoutClosesSlowClient) {
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");  // never finishes the head
  char b[64];
  ssize_t n = recv(fd, b, sizeof b, 0);  // the server closes after read_timeout_ms (300)
  EXPECT_EQ(n, 0);
  close(fd);
}

TEST_F(Gateway, IdleKeepAliveConnectionIsClosed) {
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  send_all(fd, make_request("GET", "/health", "", {}, false));
  auto raw = std::string();
  char b[4096];
  ssize_t n = recv(fd, b, sizeof b, 0);
  ASSERT_GT(n, 0);
  raw.assign(b, static_cast<size_t>(n));
  EXPECT_NE(raw.find("200 OK"), std::string::npos);
  n = recv(fd, b, sizeof b, 0);  // idle_timeout_ms (3000) later: closed
  EXPECT_EQ(n, 0);
  close(fd);
}

// ---- malformed input and upstream errors --------------------------------------------------------

TEST_F(Gateway, MalformedJsonIs400NamingThePosition) {
  auto r = post("/v1/chat/completions", R"({"model":"gpt-4o","messages":[})");
  EXPECT_EQ(r.status, 400);
  auto v = parse_json(r.body);
  ASSERT_TRUE(v.is_object()) << r.body;
  EXPECT_EQ(v.at("error").at("type").as_string(), "invalid_request_error");
  EXPECT_NE(std::string(v.at("error").at("message").as_string()).find("line 1"), std::string::npos) << r.body;
}

TEST_F(Gateway, UnknownModelIs404) {
  auto r = post("/v1/chat/completions", chat_body("no-such-model", "x", false));
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("no-such-model"), std::string::npos);
}

TEST_F(Gateway, BodyTooLargeIs413) {
  std::string big(70000, 'a');
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", big, false));
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(parse_json(r.body).is_object());
}

TEST_F(Gateway, HeaderTooLargeIs431) {
  auto r = call(port(), "GET", "/health", "", {{"x-big", std::string(8000, 'b')}});
  EXPECT_EQ(r.status, 431);
}

TEST_F(Gateway, MalformedHttpIs400) {
  int fd = dial(port());
  ASSERT_GE(fd, 0);
  send_all(fd, "THIS IS NOT HTTP\r\n\r\n");
  auto r = parse_reply(read_to_eof(fd));
  close(fd);
  EXPECT_EQ(r.status, 400);
}

TEST_F(Gateway, WrongMethodAndUnknownPath) {
  EXPECT_EQ(call(port(), "GET", "/v1/chat/completions").status, 405);
  EXPECT_EQ(call(port(), "GET", "/v2/nothing").status, 404);
}

TEST_F(Gateway, UpstreamErrorStatusPassedThrough) {
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", "x", false, R"("mock":{"error_status":429})"));
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.body.find("Rate limit"), std::string::npos) << r.body;
  auto a = post("/v1/chat/completions", chat_body("claude", "x", true, R"("mock":{"error_status":400})"));
  EXPECT_EQ(a.status, 400) << a.body;
}

TEST_F(Gateway, MidStreamUpstreamFailureEndsWithErrorEvent) {
  auto r = post("/v1/chat/completions", chat_body("gpt-4o", "x", true, R"("mock":{"error_after":3,"output_tokens":10})"));
  ASSERT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_GE(ev.size(), 2u);
  EXPECT_NE(ev.back(), "[DONE]");
  auto e = parse_json(ev.back());
  ASSERT_TRUE(e.is_object()) << ev.back();
  EXPECT_TRUE(e.as_object().contains("error"));
}

// ---- other endpoints ------------------------------------------------------------------------------

TEST_F(Gateway, HealthModelsMetrics) {
  EXPECT_EQ(call(port(), "GET", "/health").status, 200);
  auto m = call(port(), "GET", "/v1/models");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("\"gpt-4o\""), std::string::npos);
  post("/v1/chat/completions", chat_body("gpt-4o", "x", true));
  auto p = call(port(), "GET", "/metrics");
  ASSERT_EQ(p.status, 200);
  EXPECT_NE(p.body.find("fastpath_ttft_seconds_bucket{model=\"gpt-4o\",provider=\"oai\""), std::string::npos);
  EXPECT_NE(p.body.find("fastpath_gateway_pre_upstream_seconds"), std::string::npos);
  EXPECT_NE(p.body.find("fastpath_inter_token_seconds"), std::string::npos);
}

TEST_F(Gateway, TokenizeAndDetokenize) {
  auto r = post("/v1/tokenize", R"({"model":"gpt-4o","prompt":"hello world"})");
  if (r.status == 501) GTEST_SKIP() << "built without the tokenizer";
  if (r.status != 200) GTEST_SKIP() << "tokenizer data not available: " << r.body;
  auto v = parse_json(r.body);
  ASSERT_TRUE(v.is_object()) << r.body;
  EXPECT_EQ(v.at("encoding").as_string(), "o200k_base");
  auto& toks = v.at("tokens").as_array();
  EXPECT_EQ(static_cast<size_t>(v.at("count").to_number<int64_t>()), toks.size());
  auto d = post("/v1/detokenize", fmt::format(R"({{"model":"gpt-4o","tokens":{}}})", boost::json::serialize(toks)));
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(parse_json(d.body).at("prompt").as_string(), "hello world");
  EXPECT_EQ(post("/v1/tokenize", R"({"model":"gpt-4o"})").status, 400);
  EXPECT_EQ(post("/v1/detokenize", R"({"model":"gpt-4o","tokens":["x"]})").status, 400);
}

// ---- load -----------------------------------------------------------------------------------------

TEST_F(Gateway, FiveHundredConcurrentStreamsComplete) {
  constexpr int n = 500;
  std::vector<int> fds(n, -1);
  std::string req = make_request("POST", "/v1/chat/completions",
                                 chat_body("gpt-4o", "x", true, R"("mock":{"itl_ms":20,"output_tokens":10})"));
  for (int i = 0; i < n; ++i) {
    fds[i] = dial(port(), 60);
    ASSERT_GE(fds[i], 0) << "connect " << i << ": " << std::strerror(errno);
  }
  // Every request is in flight before any response is read.
  for (int i = 0; i < n; ++i) ASSERT_TRUE(send_all(fds[i], req));
  std::vector<std::string> raw(n);
  std::vector<pollfd> pfds(n);
  int open = n;
  for (int i = 0; i < n; ++i) pfds[i] = {fds[i], POLLIN, 0};
  char buf[16384];
  for (int rounds = 0; open > 0 && rounds < 1000000; ++rounds) {
    int k = poll(pfds.data(), pfds.size(), 30000);
    ASSERT_GT(k, 0) << "no progress for 30 s with " << open << " streams open";
    for (int i = 0; i < n; ++i) {
      if (pfds[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = recv(pfds[i].fd, buf, sizeof buf, 0);
      if (got <= 0) {
        close(pfds[i].fd);
        pfds[i].fd = -1;
        --open;
      } else {
        raw[i].append(buf, static_cast<size_t>(got));
      }
    }
  }
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    auto r = parse_reply(raw[i]);
    auto ev = sse_data(r.body);
    if (r.status == 200 && r.complete && !ev.empty() && ev.back() == "[DONE]" && ev.size() >= 12) ++ok;
  }
  EXPECT_EQ(ok, n);
}

// ---- auth and shutdown (own gateway instances) ------------------------------------------------------

TEST_F(Gateway, ApiKeysRequired) {
  auto cfg = gateway::config_from_yaml(fmt::format(R"(
server: {{port: 0, threads: 1}}
auth: {{api_keys: [k-one, k-two]}}
log: {{access_log: false}}
providers: [{{name: oai, kind: openai, base_url: "http://127.0.0.1:{}/v1"}}]
models: [{{name: gpt-4o, provider: oai}}]
)",
                                                   g_env->oai->port()));
  ASSERT_TRUE(cfg) << cfg.error().message;
  auto gw = gateway::gateway::create(std::move(*cfg));
  ASSERT_TRUE(gw);
  auto p = (*gw)->start();
  ASSERT_TRUE(p);
  std::string body = chat_body("gpt-4o", "x", false, R"("max_tokens":2)");
  EXPECT_EQ(call(*p, "POST", "/v1/chat/completions", body).status, 401);
  auto bad = call(*p, "POST", "/v1/chat/completions", body, {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(bad.body.find("nope"), std::string::npos);  // keys are never echoed
  EXPECT_EQ(call(*p, "POST", "/v1/chat/completions", body, {{"Authorization", "Bearer k-two"}}).status, 200);
  EXPECT_EQ(call(*p, "GET", "/health").status, 200);
  (*gw)->stop();
  (*gw)->wait();
}

TEST_F(Gateway, GracefulShutdownLetsRunningStreamFinish) {
  auto cfg = gateway::config_from_yaml(fmt::format(R"(
server: {{port: 0, threads: 1, shutdown_grace_ms: 10000}}
log: {{access_log: false}}
providers: [{{name: oai, kind: openai, base_url: "http://127.0.0.1:{}/v1"}}]
models: [{{name: gpt-4o, provider: oai}}]
)",
                                                   g_env->oai->port()));
  ASSERT_TRUE(cfg);
  auto gw = gateway::gateway::create(std::move(*cfg));
  ASSERT_TRUE(gw);
  auto p = (*gw)->start();
  ASSERT_TRUE(p);
  int fd = dial(*p);
  ASSERT_GE(fd, 0);
  send_all(fd, make_request("POST", "/v1/chat/completions",
                            chat_body("gpt-4o", "x", true, R"("mock":{"itl_ms":30,"output_tokens":10})")));
  char b[4096];
  std::string raw;
  ssize_t n = recv(fd, b, sizeof b, 0);  // the stream has started
  ASSERT_GT(n, 0);
  raw.append(b, static_cast<size_t>(n));
  (*gw)->stop();
  raw += read_to_eof(fd);
  close(fd);
  auto r = parse_reply(raw);
  auto ev = sse_data(r.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back(), "[DONE]");
  EXPECT_TRUE(r.complete);
  (*gw)->wait();  // returns: the server drained
  EXPECT_LT(dial(*p), 0);  // no longer accepting
}

}  // namespace
}  // namespace fp::test
