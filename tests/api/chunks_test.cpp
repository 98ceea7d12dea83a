#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/api.hpp"

using namespace fp::api;

namespace {
chunk_meta meta() {
  chunk_meta m;
  m.id = "chatcmpl-1";
  m.created = 1700000000;
  m.model = "gpt-4o-mini";
  return m;
}
}  // namespace

TEST(make_chat_chunk, exact_bytes) {
  chunk_delta d;
  d.role = "assistant";
  d.content = "";
  EXPECT_EQ(make_chat_chunk_json(meta(), d),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",)"
            R"("choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]})");
  chunk_delta f;
  f.finish = finish_reason::length;
  EXPECT_EQ(make_chat_chunk_json(meta(), f),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",)"
            R"("choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]})");
  fp::api::usage u{10, 5, 2};
  EXPECT_EQ(make_usage_chunk_json(meta(), u),
            R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini",)"
            R"("choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,)"
            R"("prompt_tokens_details":{"cached_tokens":2}}})");
}

TEST(make_chat_chunk, tool_calls_are_valid_json) {
  tool_call_delta t[2] = {{0, "call_1", "get_weather", ""}, {1, {}, {}, "{\"city\":"}};
  chunk_delta d;
  d.tool_calls = t;
  auto c = make_chat_chunk(meta(), d);
  EXPECT_TRUE(c.has_tool_calls);
  auto v = boost::json::parse(c.json);
  auto& tcs = v.at("choices").at(0).at("delta").at("tool_calls").as_array();
  ASSERT_EQ(tcs.size(), 2u);
  EXPECT_EQ(tcs[0].at("id").as_string(), "call_1");
  EXPECT_EQ(tcs[0].at("type").as_string(), "function");
  EXPECT_EQ(tcs[0].at("function").at("name").as_string(), "get_weather");
  EXPECT_EQ(tcs[1].at("function").at("arguments").as_string(), "{\"city\":");
  EXPECT_FALSE(tcs[1].as_object().contains("id"));
}

TEST(parse_openai_chunk, roundtrips_what_we_make) {
  chunk_delta d;
  d.content = "h\u00e9llo \"world\"\n";
  auto made = make_chat_chunk(meta(), d);
  auto p = parse_openai_chunk(made.json);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->content, *d.content);
  EXPECT_EQ(p->finish, finish_reason::none);
  EXPECT_FALSE(p->usage);
  EXPECT_EQ(p->json, made.json);

  auto uc = parse_openai_chunk(make_usage_chunk_json(meta(), fp::api::usage{3, 4, 1}));
  ASSERT_TRUE(uc.has_value());
  ASSERT_TRUE(uc->usage);
  EXPECT_EQ(uc->usage->prompt_tokens, 3);
  EXPECT_EQ(uc->usage->completion_tokens, 4);
  EXPECT_EQ(uc->usage->cached_prompt_tokens, 1);

  auto tc = parse_openai_chunk(make_completion_chunk_json(meta(), "text!", finish_reason::stop));
  ASSERT_TRUE(tc.has_value());
  EXPECT_EQ(tc->content, "text!");
  EXPECT_EQ(tc->finish, finish_reason::stop);
}

TEST(parse_openai_chunk, real_world_shapes) {
  // vLLM / OpenAI style with usage:null on every chunk, n=2, tool calls, and an escaped key order.
  auto a = parse_openai_chunk(
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"A\u00e9"},"finish_reason":null},{"index":1,"delta":{"content":"B"}}],"usage":null})");
  ASSERT_TRUE(a.has_value()) << a.error().message;
  EXPECT_EQ(a->content, "A\xc3\xa9");
  EXPECT_FALSE(a->usage);
  auto b = parse_openai_chunk(
      R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},"finish_reason":"tool_calls","index":0}]})");
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->has_tool_calls);
  EXPECT_EQ(b->finish, finish_reason::tool_calls);
  auto c = parse_openai_chunk(R"({"choices":[{"delta":{"content":null,"role":"assistant"}}]})");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->content, "");
}

TEST(parse_openai_chunk, errors) {
  EXPECT_FALSE(parse_openai_chunk("not json").has_value());
  EXPECT_FALSE(parse_openai_chunk("[1]").has_value());
  EXPECT_FALSE(parse_openai_chunk(R"({"choices":5})").has_value());
  EXPECT_FALSE(parse_openai_chunk(R"({"choices":[{"delta":{"content":5}}]})").has_value());
  auto e = parse_openai_chunk(R"({"error":{"message":"overloaded","type":"server_error"}})");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "overloaded");
  EXPECT_EQ(e.error().code, fp::errc::upstream_error);
  EXPECT_FALSE(parse_openai_chunk("").has_value());
  EXPECT_FALSE(parse_openai_chunk(R"({"choices":[{"delta":{"content":"unterminated)").has_value());
}
