#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/api.hpp"

using namespace fp::api;

namespace {
chunk_meta meta() {
  chunk_meta m;
  m.id = "chatcmpl-9";
  m.created = 42;
  m.model = "gpt-4o";
  m.system_fingerprint = "fp_x";
  return m;
}
}  // namespace

TEST(chunk_aggregator, merges_content_tool_calls_usage_logprobs) {
  chunk_aggregator agg;
  chunk_delta r;
  r.role = "assistant";
  r.content = "";
  ASSERT_TRUE(agg.add(make_chat_chunk(meta(), r)));
  chunk_delta c1;
  c1.content = "Hel";
  ASSERT_TRUE(agg.add(make_chat_chunk(meta(), c1)));
  ASSERT_TRUE(agg.add(std::string_view(
      R"({"id":"chatcmpl-9","object":"chat.completion.chunk","created":42,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo"},"logprobs":{"content":[{"token":"lo","logprob":-0.1}]},"finish_reason":null}]})")));
  tool_call_delta t0{0, "call_a", "f", ""};
  tool_call_delta t1{1, "call_b", "g", "{\"y\""};
  tool_call_delta t0b{0, {}, {}, "{\"x\":1}"};
  tool_call_delta t1b{1, {}, {}, ":2}"};
  for (auto* t : {&t0, &t1, &t0b, &t1b}) {
    chunk_delta d;
    d.tool_calls = std::span<const tool_call_delta>(t, 1);
    ASSERT_TRUE(agg.add(make_chat_chunk(meta(), d)));
  }
  chunk_delta f;
  f.finish = finish_reason::tool_calls;
  ASSERT_TRUE(agg.add(make_chat_chunk(meta(), f)));
  ASSERT_TRUE(agg.add(make_usage_chunk(meta(), fp::api::usage{7, 3, 0})));
  EXPECT_FALSE(agg.add(std::string_view("{bad")));

  auto resp = agg.finish();
  EXPECT_EQ(resp.content, "Hello");
  EXPECT_EQ(resp.finish, finish_reason::tool_calls);
  ASSERT_TRUE(resp.usage);
  EXPECT_EQ(resp.usage->completion_tokens, 3);
  auto v = boost::json::parse(resp.json);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_EQ(v.at("id").as_string(), "chatcmpl-9");
  EXPECT_EQ(v.at("system_fingerprint").as_string(), "fp_x");
  auto& msg = v.at("choices").at(0).at("message");
  EXPECT_EQ(msg.at("content").as_string(), "Hello");
  EXPECT_EQ(msg.at("tool_calls").at(0).at("function").at("arguments").as_string(), "{\"x\":1}");
  EXPECT_EQ(msg.at("tool_calls").at(1).at("function").at("arguments").as_string(), "{\"y\":2}");
  EXPECT_EQ(msg.at("tool_calls").at(1).at("id").as_string(), "call_b");
  EXPECT_EQ(v.at("choices").at(0).at("logprobs").at("content").at(0).at("token").as_string(), "lo");
  EXPECT_EQ(v.at("usage").at("total_tokens").as_int64(), 10);
}

TEST(response_to_chunks, roundtrip_through_aggregator) {
  tool_call calls[] = {{"call_1", "lookup", "{\"q\":\"caf\xc3\xa9\"}"}};
  std::string content = "Bonjour, caf\xc3\xa9 \xe2\x98\x95 time.";
  auto json = make_chat_response_json(meta(), content, calls, finish_reason::tool_calls, fp::api::usage{11, 6, 4});
  auto chunks = response_to_chunks(json, true, 3);
  ASSERT_TRUE(chunks.has_value()) << chunks.error().message;
  EXPECT_GT(chunks->size(), 5u);
  std::string joined;
  for (const auto& c : *chunks) {
    joined += c.content;
    // Every piece is valid UTF-8 on its own and parses on the fast path.
    auto p = parse_openai_chunk(c.json);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->content, c.content);
  }
  EXPECT_EQ(joined, content);
  EXPECT_TRUE(chunks->back().usage);
  chunk_aggregator agg;
  for (const auto& c : *chunks) ASSERT_TRUE(agg.add(c));
  auto back = agg.finish();
  EXPECT_EQ(boost::json::parse(back.json), boost::json::parse(json));
}

TEST(response_to_chunks, text_completion_roundtrip) {
  auto json = make_completion_response_json(meta(), "once upon a time", finish_reason::length, fp::api::usage{2, 4, 0});
  auto chunks = response_to_chunks(json, true, 5);
  ASSERT_TRUE(chunks.has_value());
  chunk_aggregator agg;
  for (const auto& c : *chunks) ASSERT_TRUE(agg.add(c));
  auto back = agg.finish();
  EXPECT_EQ(back.content, "once upon a time");
  EXPECT_EQ(back.finish, finish_reason::length);
  auto v = boost::json::parse(back.json);
  EXPECT_EQ(v.at("object").as_string(), "text_completion");
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 4);
}

TEST(parse_openai_response, fields) {
  auto json = make_chat_response_json(meta(), "hi", {}, finish_reason::stop, fp::api::usage{1, 1, 0});
  auto r = parse_openai_response(json);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->content, "hi");
  EXPECT_EQ(r->finish, finish_reason::stop);
  EXPECT_EQ(r->usage->prompt_tokens, 1);
  EXPECT_FALSE(parse_openai_response("{").has_value());
  auto e = parse_openai_response(R"({"error":{"message":"nope"}})");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "nope");
}
