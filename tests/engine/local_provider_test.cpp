// The local provider end to end in-process: an io_context, the provider's engine thread, a sink.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "api/api.hpp"
#include "engine/engine.hpp"
#include "engine/generate.hpp"
#include "providers/local.hpp"

namespace fp::providers {
namespace {

namespace asio = boost::asio;

std::string model_path() { return std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf"; }

struct collect final : chunk_sink {
  std::vector<api::chunk> chunks;
  std::string content;
  int stop_after = -1;  // return false after this many content chunks
  int content_chunks = 0;
  std::thread::id thread;
  asio::awaitable<bool> on_chunk(const api::chunk& c) override {
    thread = std::this_thread::get_id();
    chunks.push_back(c);
    content += c.content;
    if (!c.content.empty()) ++content_chunks;
    co_return !(stop_after >= 0 && content_chunks >= stop_after);
  }
};

result<api::usage> run_stream(provider& p, const std::string& body, api::endpoint kind, collect& sink) {
  auto req = api::parse_openai_request(body, kind);
  if (!req) return req.error();
  asio::io_context ioc;
  call_options opts;
  call_stats stats;
  auto fut = asio::co_spawn(ioc, p.stream(*req, opts, sink, stats), asio::use_future);
  ioc.run();
  return fut.get();
}

std::unique_ptr<provider> make() {
  deployment_spec s;
  s.name = "local-test";
  s.kind = "local";
  s.model_path = model_path();
  auto p = make_local_provider(s);
  EXPECT_TRUE(p) << p.error().message;
  return p ? std::move(*p) : nullptr;
}

TEST(local_provider, streams_a_greedy_completion) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "missing " << model_path();
  auto p = make();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->kind(), "local");
  collect sink;
  auto u = run_stream(*p,
                      R"({"model":"stories","prompt":"Once upon a time","max_tokens":20,"temperature":0,)"
                      R"("stream":true,"stream_options":{"include_usage":true}})",
                      api::endpoint::completions, sink);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->prompt_tokens, 5);
  EXPECT_EQ(u->completion_tokens, 20);
  EXPECT_EQ(sink.content.substr(0, 35), ", there was a little girl named Lil");
  ASSERT_GE(sink.chunks.size(), 3u);
  EXPECT_EQ(sink.chunks[sink.chunks.size() - 2].finish, api::finish_reason::length);
  EXPECT_TRUE(sink.chunks.back().usage.has_value());
  EXPECT_GT(sink.content_chunks, 5);  // streamed token by token, not in one piece
}

TEST(local_provider, chat_with_plain_template_and_stop) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "missing " << model_path();
  auto p = make();
  ASSERT_TRUE(p);
  collect sink;
  auto u = run_stream(*p,
                      R"({"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],)"
                      R"("max_tokens":64,"temperature":0,"stop":["Lily"],"stream":true})",
                      api::endpoint::chat_completions, sink);
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(sink.content, ", there was a little girl named ");
  ASSERT_FALSE(sink.chunks.empty());
  EXPECT_NE(sink.chunks.front().json.find("\"role\":\"assistant\""), std::string::npos);
  EXPECT_EQ(sink.chunks.back().finish, api::finish_reason::stop);
  auto parsed = api::parse_openai_chunk(sink.chunks[1].json);
  ASSERT_TRUE(parsed);
  EXPECT_NE(sink.chunks[1].json.find("chat.completion.chunk"), std::string::npos);
}

TEST(local_provider, sink_false_cancels_and_provider_stays_usable) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "missing " << model_path();
  auto p = make();
  ASSERT_TRUE(p);
  collect sink;
  sink.stop_after = 3;
  auto u = run_stream(*p, R"({"model":"s","prompt":"Once upon a time","max_tokens":400,"temperature":0.8,"seed":3})",
                      api::endpoint::completions, sink);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, errc::cancelled);
  EXPECT_EQ(sink.content_chunks, 3);
  // The next request is served normally (the cancelled one released the engine).
  collect again;
  auto u2 = run_stream(*p, R"({"model":"s","prompt":"She wanted to","max_tokens":8,"temperature":0})",
                       api::endpoint::completions, again);
  ASSERT_TRUE(u2) << u2.error().message;
  EXPECT_EQ(u2->completion_tokens, 8);
}

TEST(local_provider, concurrent_requests_and_complete) {
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "missing " << model_path();
  auto p = make();
  ASSERT_TRUE(p);
  asio::io_context ioc;
  call_options opts;
  call_stats s1, s2, s3;
  collect c1, c2;
  auto r1 = api::parse_openai_request(R"({"model":"s","prompt":"Once upon a time","max_tokens":16,"temperature":0})",
                                      api::endpoint::completions);
  auto r2 = api::parse_openai_request(R"({"model":"s","prompt":"Once upon a time","max_tokens":16,"temperature":0})",
                                      api::endpoint::completions);
  auto r3 = api::parse_openai_request(
      R"({"model":"s","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16,"temperature":0})");
  ASSERT_TRUE(r1 && r2 && r3);
  auto f1 = asio::co_spawn(ioc, p->stream(*r1, opts, c1, s1), asio::use_future);
  auto f2 = asio::co_spawn(ioc, p->stream(*r2, opts, c2, s2), asio::use_future);
  auto f3 = asio::co_spawn(ioc, p->complete(*r3, opts, s3), asio::use_future);
  ioc.run();
  auto u1 = f1.get(), u2 = f2.get();
  auto resp = f3.get();
  ASSERT_TRUE(u1 && u2 && resp);
  EXPECT_EQ(c1.content, c2.content);  // greedy: the same text
  EXPECT_EQ(resp->content, c1.content);
  ASSERT_TRUE(resp->usage);
  EXPECT_EQ(resp->usage->completion_tokens, 16);
  EXPECT_GE(s1.upstream_ttft_ns, 0);
}

TEST(local_provider, bad_requests_and_config) {
  deployment_spec s;
  s.name = "x";
  s.kind = "local";
  auto none = make_local_provider(s);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("model_path"), std::string::npos);
  s.model_path = "/nonexistent.gguf";
  EXPECT_FALSE(make_local_provider(s));
  if (!std::filesystem::exists(model_path())) GTEST_SKIP() << "missing " << model_path();
  s.model_path = model_path();
  local_options o;
  o.chat_template = "nope";
  EXPECT_FALSE(make_local_provider(s, o));
  o.chat_template = "chatml";
  o.kv_tokens = 32;
  auto p = make_local_provider(s, o);
  ASSERT_TRUE(p);
  collect sink;
  std::string long_prompt(400, 'a');
  auto u = run_stream(**p, R"({"model":"s","prompt":")" + long_prompt + R"("})", api::endpoint::completions, sink);
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, errc::invalid_request);
  auto t = run_stream(**p, R"({"model":"s","prompt":"hi","min_p":"x"})", api::endpoint::completions, sink);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("min_p"), std::string::npos);
}

}  // namespace
}  // namespace fp::providers
