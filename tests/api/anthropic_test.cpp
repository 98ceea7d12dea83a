#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "api/api.hpp"

using namespace fp::api;
namespace json = boost::json;

TEST(anthropic_request_json, translates_everything) {
  auto req = parse_openai_request(R"({
    "model":"claude-3-haiku","stream":true,"temperature":1.5,"top_p":0.9,"stop":"END","user":"u1",
    "messages":[
      {"role":"system","content":"You are terse."},
      {"role":"developer","content":[{"type":"text","text":"Use tools."}]},
      {"role":"user","content":[{"type":"text","text":"Look at"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
      {"role":"user","content":"and tell me the weather"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
      {"role":"tool","tool_call_id":"call_1","content":"sunny"},
      {"role":"assistant","content":"It is sunny."}
    ],
    "tools":[{"type":"function","function":{"name":"weather","description":"Get weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
    "tool_choice":{"type":"function","function":{"name":"weather"}},
    "parallel_tool_calls":false})");
  ASSERT_TRUE(req.has_value()) << req.error().message;
  auto body = anthropic_request_json(*req, "claude-3-haiku-20240307");
  ASSERT_TRUE(body.has_value()) << body.error().message;
  auto v = json::parse(*body);
  EXPECT_EQ(v.at("model").as_string(), "claude-3-haiku-20240307");
  EXPECT_EQ(v.at("max_tokens").as_int64(), anthropic_default_max_tokens);
  EXPECT_EQ(v.at("system").as_array().size(), 2u);
  EXPECT_EQ(v.at("system").at(0).at("text").as_string(), "You are terse.");
  EXPECT_EQ(v.at("stop_sequences").at(0).as_string(), "END");
  EXPECT_DOUBLE_EQ(v.at("temperature").as_double(), 1.0);
  EXPECT_TRUE(v.at("stream").as_bool());
  EXPECT_EQ(v.at("metadata").at("user_id").as_string(), "u1");
  auto& msgs = v.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 4u);  // user (merged), assistant, user(tool_result), assistant
  EXPECT_EQ(msgs[0].at("role").as_string(), "user");
  ASSERT_EQ(msgs[0].at("content").as_array().size(), 3u);
  EXPECT_EQ(msgs[0].at("content").at(1).at("type").as_string(), "image");
  EXPECT_EQ(msgs[0].at("content").at(1).at("source").at("media_type").as_string(), "image/png");
  EXPECT_EQ(msgs[0].at("content").at(1).at("source").at("data").as_string(), "AAAA");
  EXPECT_EQ(msgs[1].at("content").at(0).at("type").as_string(), "tool_use");
  EXPECT_EQ(msgs[1].at("content").at(0).at("input").at("city").as_string(), "Paris");
  EXPECT_EQ(msgs[2].at("role").as_string(), "user");
  EXPECT_EQ(msgs[2].at("content").at(0).at("type").as_string(), "tool_result");
  EXPECT_EQ(msgs[2].at("content").at(0).at("tool_use_id").as_string(), "call_1");
  EXPECT_EQ(msgs[2].at("content").at(0).at("content").as_string(), "sunny");
  EXPECT_EQ(v.at("tools").at(0).at("name").as_string(), "weather");
  EXPECT_EQ(v.at("tools").at(0).at("input_schema").at("type").as_string(), "object");
  EXPECT_EQ(v.at("tool_choice").at("type").as_string(), "tool");
  EXPECT_EQ(v.at("tool_choice").at("name").as_string(), "weather");
  EXPECT_TRUE(v.at("tool_choice").at("disable_parallel_tool_use").as_bool());
}

TEST(anthropic_request_json, defaults_and_errors) {
  auto req = parse_openai_request(R"({"model":"c","max_tokens":12,"messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"})");
  ASSERT_TRUE(req.has_value());
  auto v = json::parse(*anthropic_request_json(*req));
  EXPECT_EQ(v.at("model").as_string(), "c");
  EXPECT_EQ(v.at("max_tokens").as_int64(), 12);
  EXPECT_FALSE(v.as_object().contains("system"));
  EXPECT_FALSE(v.as_object().contains("stream"));
  EXPECT_EQ(v.at("stop_sequences").as_array().size(), 2u);
  EXPECT_EQ(v.at("tool_choice").at("type").as_string(), "any");
  EXPECT_EQ(v.at("tools").at(0).at("input_schema").at("type").as_string(), "object");

  auto bad = parse_openai_request(R"({"model":"c","messages":[{"role":"assistant","tool_calls":[{"id":"x","function":{"name":"f","arguments":"not json"}}]}]})");
  ASSERT_TRUE(bad.has_value());
  EXPECT_FALSE(anthropic_request_json(*bad).has_value());
}

namespace {
struct ev {
  const char* event;
  const char* data;
};

// A real-shaped Anthropic stream: text then a tool_use block with input_json_delta.
const ev tool_stream[] = {
    {"message_start", R"({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-3-haiku-20240307","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1,"cache_read_input_tokens":5}}})"},
    {"content_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
    {"ping", R"({"type": "ping"})"},
    {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})"},
    {"content_block_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"check."}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
    {"content_block_start", R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"weather","input":{}}})"},
    {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})"},
    {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": "}})"},
    {"content_block_delta", R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}})"},
    {"content_block_stop", R"({"type":"content_block_stop","index":1})"},
    {"message_delta", R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}})"},
    {"message_stop", R"({"type":"message_stop"})"},
};
}  // namespace

TEST(anthropic_stream_translator, text_and_tool_use) {
  anthropic_stream_translator t("claude-haiku", true, 100);
  std::vector<chunk> out;
  for (const auto& e : tool_stream) {
    auto r = t.on_event(e.event, e.data, out);
    ASSERT_TRUE(r.has_value()) << e.event << ": " << r.error().message;
  }
  EXPECT_TRUE(t.done());
  chunk_aggregator agg;
  std::string text;
  for (const auto& c : out) {
    ASSERT_TRUE(agg.add(c));
    text += c.content;
    auto p = parse_openai_chunk(c.json);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->content, c.content);
  }
  EXPECT_EQ(text, "Let me check.");
  ASSERT_TRUE(out.back().usage);
  EXPECT_EQ(out.back().usage->prompt_tokens, 30);
  EXPECT_EQ(out.back().usage->cached_prompt_tokens, 5);
  EXPECT_EQ(out.back().usage->completion_tokens, 42);
  auto resp = agg.finish();
  EXPECT_EQ(resp.finish, finish_reason::tool_calls);
  auto v = json::parse(resp.json);
  EXPECT_EQ(v.at("id").as_string(), "chatcmpl-msg_01");
  EXPECT_EQ(v.at("model").as_string(), "claude-haiku");
  auto& tc = v.at("choices").at(0).at("message").at("tool_calls").at(0);
  EXPECT_EQ(tc.at("id").as_string(), "toolu_1");
  EXPECT_EQ(tc.at("function").at("name").as_string(), "weather");
  EXPECT_EQ(tc.at("function").at("arguments").as_string(), "{\"city\": \"Paris\"}");
}

TEST(anthropic_stream_translator, stop_reasons_and_event_name_from_data) {
  for (auto [reason, expect] : {std::pair{"end_turn", finish_reason::stop}, {"max_tokens", finish_reason::length},
                               {"stop_sequence", finish_reason::stop}, {"tool_use", finish_reason::tool_calls}}) {
    anthropic_stream_translator t("m", false);
    std::vector<chunk> out;
    ASSERT_TRUE(t.on_event("", R"({"type":"message_start","message":{"id":"m1","usage":{"input_tokens":1,"output_tokens":0}}})", out));
    std::string md = std::string(R"({"type":"message_delta","delta":{"stop_reason":")") + reason + R"("},"usage":{"output_tokens":2}})";
    ASSERT_TRUE(t.on_event("message_delta", md, out));
    ASSERT_TRUE(t.on_event("message_stop", R"({"type":"message_stop"})", out));
    EXPECT_EQ(t.finish(), expect);
    EXPECT_EQ(out.back().finish, expect);
    EXPECT_FALSE(out.back().usage);  // include_usage off
  }
}

TEST(anthropic_stream_translator, error_event) {
  anthropic_stream_translator t("m", false);
  std::vector<chunk> out;
  auto r = t.on_event("error", R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})", out);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "Overloaded");
  EXPECT_EQ(r.error().code, fp::errc::rate_limited);
  EXPECT_FALSE(t.on_event("content_block_delta", "{not json", out).has_value());
}

TEST(anthropic_stream_translator, through_sse_split_at_every_byte) {
  std::string wire;
  for (const auto& e : tool_stream) {
    wire += "event: ";
    wire += e.event;
    wire += "\ndata: ";
    wire += e.data;
    wire += "\n\n";
  }
  std::string expected;
  {
    anthropic_stream_translator t("m", true);
    std::vector<chunk> out;
    for (const auto& e : tool_stream) ASSERT_TRUE(t.on_event(e.event, e.data, out));
    for (auto& c : out) expected += c.json + "\n";
  }
  for (size_t cut = 0; cut <= wire.size(); cut += 3) {
    sse_parser p;
    anthropic_stream_translator t("m", true);
    std::vector<chunk> out;
    sse_event e;
    p.feed(std::string_view(wire).substr(0, cut));
    while (p.next(e)) ASSERT_TRUE(t.on_event(e.event, e.data, out));
    p.feed(std::string_view(wire).substr(cut));
    while (p.next(e)) ASSERT_TRUE(t.on_event(e.event, e.data, out));
    std::string got;
    for (auto& c : out) got += c.json + "\n";
    EXPECT_EQ(got, expected) << "cut " << cut;
  }
}

TEST(anthropic_response_to_openai, text_and_tools) {
  auto r = anthropic_response_to_openai(
      R"({"id":"msg_9","type":"message","role":"assistant","model":"claude-3-haiku-20240307","content":[{"type":"text","text":"Sure."},{"type":"tool_use","id":"toolu_9","name":"f","input":{"a":1}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":20}})",
      "haiku", 5);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->content, "Sure.");
  EXPECT_EQ(r->finish, finish_reason::tool_calls);
  EXPECT_EQ(r->usage->total(), 30);
  auto v = json::parse(r->json);
  EXPECT_EQ(v.at("model").as_string(), "haiku");
  EXPECT_EQ(v.at("choices").at(0).at("message").at("tool_calls").at(0).at("function").at("arguments").as_string(), "{\"a\":1}");
  auto e = anthropic_response_to_openai(R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})", "m");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "bad");
}
