// `fastpath mock` over real sockets: both wire formats, errors, counters, cancellation.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>

#include "api/api.hpp"
#include "test_http.hpp"

using namespace fp;
using fp::test::child_server;
using fp::test::request;

namespace {

int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<api::sse_event> events_of(const std::string& body) {
  api::sse_parser p;
  p.feed(body);
  std::vector<api::sse_event> out;
  api::sse_event e;
  while (p.next(e)) out.push_back(e);
  return out;
}

constexpr const char* kChat =
    R"({"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":7,"messages":[{"role":"user","content":"hello there"}]})";

}  // namespace

TEST(mock_server, openai_stream_complete_and_in_order) {
  child_server srv({"mock", "--port", "0", "--profile", "zero"});
  ASSERT_GT(srv.port(), 0) << srv.first_line();
  EXPECT_EQ(srv.first_line().rfind("listening 127.0.0.1:", 0), 0u);
  auto r = request(srv.port(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.chunked);
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream; charset=utf-8");
  auto ev = events_of(r.body);
  ASSERT_EQ(ev.size(), 1u + 7 + 1 + 1 + 1);  // role, 7 tokens, finish, usage, [DONE]
  EXPECT_TRUE(ev.back().done());
  api::chunk_aggregator agg;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    auto c = api::parse_openai_chunk(ev[i].data);
    ASSERT_TRUE(c.has_value()) << ev[i].data;
    ASSERT_TRUE(agg.add(*c));
  }
  auto resp = agg.finish();
  EXPECT_EQ(resp.finish, api::finish_reason::length);
  EXPECT_EQ(resp.usage->completion_tokens, 7);
  // The non-streamed answer carries the same text (deterministic for the prompt).
  std::string body = kChat;
  body.replace(body.find("\"stream\":true"), 13, "\"stream\":false");
  auto nr = request(srv.port(), "POST", "/v1/chat/completions", body);
  ASSERT_EQ(nr.status, 200);
  EXPECT_EQ(nr.headers["content-type"], "application/json");
  auto parsed = api::parse_openai_response(nr.body);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->content, resp.content);
  auto stats = boost::json::parse(request(srv.port(), "GET", "/mock/stats").body);
  EXPECT_EQ(stats.at("requests").as_int64(), 2);
  EXPECT_EQ(stats.at("completed").as_int64(), 2);
}

TEST(mock_server, anthropic_stream_translates_back) {
  child_server srv({"mock", "--port", "0", "--profile", "zero", "--format", "anthropic"});
  ASSERT_GT(srv.port(), 0);
  auto oreq = api::parse_openai_request(
      R"({"model":"claude-3-haiku","stream":true,"max_tokens":5,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"please use a tool"}],
          "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]})");
  ASSERT_TRUE(oreq.has_value());
  auto body = api::anthropic_request_json(*oreq);
  ASSERT_TRUE(body.has_value());
  auto r = request(srv.port(), "POST", "/v1/messages", *body, {"x-api-key: test", "anthropic-version: 2023-06-01"});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.complete);
  auto ev = events_of(r.body);
  ASSERT_GE(ev.size(), 6u);
  EXPECT_EQ(ev.front().event, "message_start");
  EXPECT_EQ(ev.back().event, "message_stop");
  api::anthropic_stream_translator t("claude-3-haiku", true);
  std::vector<api::chunk> chunks;
  for (auto& e : ev) ASSERT_TRUE(t.on_event(e.event, e.data, chunks));
  EXPECT_TRUE(t.done());
  api::chunk_aggregator agg;
  for (auto& c : chunks) ASSERT_TRUE(agg.add(c));
  auto resp = boost::json::parse(agg.finish().json);
  auto& tc = resp.at("choices").at(0).at("message").at("tool_calls").at(0);
  EXPECT_EQ(tc.at("function").at("name").as_string(), "lookup");
  EXPECT_EQ(boost::json::parse(tc.at("function").at("arguments").as_string()).at("query").as_string(),
            "please use a tool");
  EXPECT_EQ(resp.at("choices").at(0).at("finish_reason").as_string(), "tool_calls");
  EXPECT_TRUE(chunks.back().usage);

  // Non-streamed, text.
  auto plain = api::parse_openai_request(R"({"model":"claude-3-haiku","max_tokens":4,"messages":[{"role":"user","content":"hi"}]})");
  auto nr = request(srv.port(), "POST", "/v1/messages", *api::anthropic_request_json(*plain));
  ASSERT_EQ(nr.status, 200);
  auto oai = api::anthropic_response_to_openai(nr.body, "claude-3-haiku");
  ASSERT_TRUE(oai.has_value());
  EXPECT_EQ(oai->finish, api::finish_reason::length);
  EXPECT_EQ(oai->usage->completion_tokens, 4);

  // Missing max_tokens: Anthropic's error shape.
  auto bad = request(srv.port(), "POST", "/v1/messages", R"({"model":"c","messages":[]})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(boost::json::parse(bad.body).at("type").as_string(), "error");
  auto stats = boost::json::parse(request(srv.port(), "GET", "/mock/stats").body);
  EXPECT_EQ(stats.at("auth_x_api_key").as_int64(), 1);
}

TEST(mock_server, errors_in_each_shape) {
  child_server srv({"mock", "--port", "0"});
  ASSERT_GT(srv.port(), 0);
  auto r = request(srv.port(), "POST", "/v1/chat/completions", R"({"model":"m","messages":[{"role":"user","content":"x"}]})",
                   {"x-mock-error-status: 429"});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(boost::json::parse(r.body).at("error").at("code").as_string(), "rate_limit_exceeded");
  auto m = request(srv.port(), "POST", "/v1/chat/completions", "{\"model\":");
  EXPECT_EQ(m.status, 400);
  EXPECT_NE(boost::json::parse(m.body).at("error").at("message").as_string().find("byte"), std::string::npos);
  EXPECT_EQ(request(srv.port(), "GET", "/v1/nothing").status, 404);
  auto models = boost::json::parse(request(srv.port(), "GET", "/v1/models").body);
  EXPECT_EQ(models.at("object").as_string(), "list");
  // A mid-stream failure ends with an error event, never [DONE].
  auto mid = request(srv.port(), "POST", "/v1/chat/completions", kChat, {"x-mock-error-after: 2"});
  EXPECT_EQ(mid.status, 200);
  auto ev = events_of(mid.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_FALSE(api::parse_openai_chunk(ev.back().data).has_value());
  // A dropped connection: the chunked body never completes.
  auto drop = request(srv.port(), "POST", "/v1/chat/completions", kChat, {"x-mock-disconnect-after: 2"});
  EXPECT_FALSE(drop.complete);
}

TEST(mock_server, client_disconnect_is_counted_promptly) {
  child_server srv({"mock", "--port", "0", "--profile", "zero"});
  ASSERT_GT(srv.port(), 0);
  int fd = fp::test::connect_to(srv.port());
  ASSERT_GE(fd, 0);
  // 10-minute gaps: the mock is waiting between tokens when the client goes away.
  ASSERT_TRUE(fp::test::send_all(fd, fp::test::build_request("POST", "/v1/chat/completions", kChat,
                                                             {"x-mock-itl-ms: 600000"})));
  // Read until the first content chunk arrived (the stream is live).
  std::string raw;
  char buf[4096];
  auto contents = [&] {
    size_t n = 0;
    for (size_t p = raw.find("\"content\":\""); p != std::string::npos; p = raw.find("\"content\":\"", p + 1)) ++n;
    return n;
  };
  while (contents() < 2) {  // the role chunk and the first token
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    raw.append(buf, static_cast<size_t>(n));
    if (raw.size() > 100000) break;
  }
  int64_t closed_at = mono_ns();
  ::close(fd);
  auto stats = boost::json::parse(request(srv.port(), "GET", "/mock/stats?wait_cancelled=1").body);
  EXPECT_EQ(stats.at("cancelled").as_int64(), 1);
  EXPECT_EQ(stats.at("active").as_int64(), 0);
  int64_t detected = stats.at("last_cancel_mono_ns").as_int64();
  EXPECT_GE(detected, closed_at);
  // The stream's next token is 10 minutes away: detection within seconds proves the mock watched the
  // socket instead of noticing at its next write (a loose bound, no speed assert; the 50 ms
  // end-to-end figure is asserted by tests/integration through the gateway).
  EXPECT_LT(detected - closed_at, 5'000'000'000) << "cancellation noticed after " << (detected - closed_at) / 1e6 << " ms";
  std::printf("cancellation noticed %.3f ms after the client closed\n", (detected - closed_at) / 1e6);
}
