#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "providers/mock.hpp"

using namespace fp::providers;
namespace asio = boost::asio;

namespace {

struct collect final : chunk_sink {
  std::vector<fp::api::chunk> chunks;
  size_t stop_after = SIZE_MAX;
  asio::awaitable<bool> on_chunk(const fp::api::chunk& c) override {
    chunks.push_back(c);
    co_return chunks.size() < stop_after;
  }
};

std::unique_ptr<provider> make(const std::string& profile) {
  deployment_spec s;
  s.name = "sim";
  s.kind = "mock";
  s.profile = profile;
  s.seed = 9;
  auto p = make_provider(s);
  EXPECT_TRUE(p.has_value());
  return std::move(*p);
}

template <class T>
T run(asio::io_context& io, asio::awaitable<T> a) {
  std::optional<T> out;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e, T v) {
    if (e) std::rethrow_exception(e);
    out = std::move(v);
  });
  io.run();
  io.restart();
  return std::move(*out);
}

}  // namespace

TEST(mock_provider, streams_then_completes_the_same_text) {
  auto p = make("zero");
  EXPECT_EQ(p->kind(), "mock");
  EXPECT_EQ(p->name(), "sim");
  auto req = *fp::api::parse_openai_request(
      R"({"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]})");
  asio::io_context io;
  collect sink;
  call_options opts;
  call_stats stats;
  auto u = run(io, p->stream(req, opts, sink, stats));
  ASSERT_TRUE(u.has_value()) << u.error().message;
  EXPECT_EQ(u->completion_tokens, 20);
  ASSERT_GE(sink.chunks.size(), 23u);  // role + 20 tokens + finish + usage
  EXPECT_TRUE(sink.chunks.back().usage);
  EXPECT_EQ(sink.chunks[sink.chunks.size() - 2].finish, fp::api::finish_reason::stop);
  EXPECT_TRUE(stats.first_byte_sent);
  std::string text;
  for (auto& c : sink.chunks) {
    text += c.content;
    auto parsed = fp::api::parse_openai_chunk(c.json);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(parsed->content, c.content);
  }
  call_stats s2;
  auto r = run(io, p->complete(req, opts, s2));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->content, text);
  EXPECT_EQ(r->usage->completion_tokens, 20);
}

TEST(mock_provider, sink_false_stops_the_stream) {
  auto p = make("zero");
  auto req = *fp::api::parse_openai_request(R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  asio::io_context io;
  collect sink;
  sink.stop_after = 3;
  call_stats stats;
  auto u = run(io, p->stream(req, call_options{}, sink, stats));
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, fp::errc::cancelled);
  EXPECT_EQ(sink.chunks.size(), 3u);
}

TEST(mock_provider, cancellation_slot_interrupts_a_long_wait) {
  auto p = make("zero");
  // A 10-minute TTFT: the test only finishes if cancellation is honoured.
  auto req = *fp::api::parse_openai_request(
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"mock":{"ttft_ms":600000}})");
  asio::io_context io;
  collect sink;
  call_stats stats;
  call_options opts;
  opts.first_byte_timeout = std::chrono::milliseconds(0);  // no limit
  asio::cancellation_signal sig;
  std::optional<fp::result<fp::api::usage>> out;
  asio::co_spawn(io, p->stream(req, opts, sink, stats),
                 asio::bind_cancellation_slot(sig.slot(), [&](std::exception_ptr, fp::result<fp::api::usage> r) { out = r; }));
  asio::post(io, [&] { sig.emit(asio::cancellation_type::terminal); });
  io.run();
  ASSERT_TRUE(out);
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().code, fp::errc::cancelled);
  EXPECT_TRUE(sink.chunks.empty());
}

TEST(mock_provider, injected_errors_and_timeouts) {
  auto p = make("zero");
  asio::io_context io;
  {
    auto req = *fp::api::parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"mock":{"error_status":429}})");
    collect sink;
    call_stats stats;
    auto u = run(io, p->stream(req, call_options{}, sink, stats));
    ASSERT_FALSE(u.has_value());
    EXPECT_EQ(u.error().code, fp::errc::rate_limited);
    EXPECT_EQ(stats.status, 429);
    EXPECT_EQ(stats.retry_after_s, 1);
  }
  {
    auto req = *fp::api::parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"mock":{"error_after":2}})");
    collect sink;
    call_stats stats;
    auto u = run(io, p->stream(req, call_options{}, sink, stats));
    ASSERT_FALSE(u.has_value());
    EXPECT_EQ(u.error().code, fp::errc::upstream_error);
    EXPECT_EQ(sink.chunks.size(), 3u);  // role + 2 tokens
  }
  {
    auto req = *fp::api::parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"mock":{"ttft_ms":600000}})");
    collect sink;
    call_stats stats;
    call_options opts;
    opts.first_byte_timeout = std::chrono::milliseconds(1);
    auto u = run(io, p->stream(req, opts, sink, stats));
    ASSERT_FALSE(u.has_value());
    EXPECT_EQ(u.error().code, fp::errc::upstream_timeout);
  }
  {
    auto req = *fp::api::parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"mock":{"stall_after":1,"stall_ms":600000}})");
    collect sink;
    call_stats stats;
    call_options opts;
    opts.chunk_gap_timeout = std::chrono::milliseconds(1);
    auto u = run(io, p->stream(req, opts, sink, stats));
    ASSERT_FALSE(u.has_value());
    EXPECT_EQ(u.error().code, fp::errc::upstream_timeout);
    EXPECT_TRUE(stats.first_byte_sent);
  }
}

TEST(mock_provider, legacy_completions) {
  auto p = make("zero");
  auto req = *fp::api::parse_openai_request(R"({"model":"m","prompt":"once","max_tokens":4})", fp::api::endpoint::completions);
  asio::io_context io;
  call_stats stats;
  auto r = run(io, p->complete(req, call_options{}, stats));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->finish, fp::api::finish_reason::length);
  EXPECT_NE(r->json.find("\"text_completion\""), std::string::npos);
}
