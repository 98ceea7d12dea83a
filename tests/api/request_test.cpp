#include <gtest/gtest.h>

#include "api/api.hpp"

using namespace fp::api;

TEST(parse_openai_request, extracts_typed_fields_and_keeps_body) {
  auto r = parse_openai_request(R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
    "stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"temperature":0.5,
    "seed":7,"n":2,"logit_bias":{"1":2},"custom_field":[1,2]})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->max_tokens, 50);
  EXPECT_DOUBLE_EQ(*r->temperature, 0.5);
  EXPECT_EQ(r->seed, 7);
  EXPECT_EQ(r->n, 2);
  EXPECT_TRUE(r->body().contains("custom_field"));
  EXPECT_TRUE(r->body().contains("logit_bias"));
}

TEST(parse_openai_request, max_completion_tokens_wins) {
  auto r = parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_completion_tokens":9})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->max_tokens, 9);
}

TEST(parse_openai_request, malformed_json_names_position) {
  auto r = parse_openai_request("{\"model\":\"m\",\n  \"messages\": [}");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, fp::errc::invalid_request);
  EXPECT_EQ(r.error().status(), 400);
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("byte 29"), std::string::npos) << r.error().message;
}

TEST(parse_openai_request, truncated_and_trailing_and_empty) {
  auto a = parse_openai_request(R"({"model":"m")");
  ASSERT_FALSE(a.has_value());
  EXPECT_NE(a.error().message.find("byte 12"), std::string::npos) << a.error().message;
  auto b = parse_openai_request(R"({"model":"m","messages":[{"role":"user"}]} x)");
  ASSERT_FALSE(b.has_value());
  EXPECT_NE(b.error().message.find("byte 43"), std::string::npos) << b.error().message;
  auto c = parse_openai_request("");
  ASSERT_FALSE(c.has_value());
  auto d = parse_openai_request("[1,2]");
  ASSERT_FALSE(d.has_value());
  EXPECT_NE(d.error().message.find("JSON object"), std::string::npos);
}

TEST(parse_openai_request, type_errors_name_the_field) {
  struct tc {
    const char* body;
    const char* field;
  } cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", "'model'"},
      {R"({"model":5,"messages":[{"role":"user","content":"x"}]})", "'model'"},
      {R"({"model":"m"})", "'messages'"},
      {R"({"model":"m","messages":"hi"})", "'messages'"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", "'stream'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"10"})", "'max_tokens'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", "'max_tokens'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})", "'temperature'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", "'n'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":5})", "'stop'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":{}})", "'tools'"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})",
       "stream_options.include_usage"},
  };
  for (const auto& c : cases) {
    auto r = parse_openai_request(c.body);
    ASSERT_FALSE(r.has_value()) << c.body;
    EXPECT_EQ(r.error().code, fp::errc::invalid_request);
    EXPECT_NE(r.error().message.find(c.field), std::string::npos) << c.body << " -> " << r.error().message;
  }
}

TEST(parse_openai_request, legacy_completions) {
  auto r = parse_openai_request(R"({"model":"m","prompt":"Once upon","max_tokens":3})", endpoint::completions);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->kind, endpoint::completions);
  EXPECT_FALSE(parse_openai_request(R"({"model":"m","prompt":{}})", endpoint::completions).has_value());
  EXPECT_TRUE(parse_openai_request(R"({"model":"m","prompt":["a",[1,2]]})", endpoint::completions).has_value());
}

TEST(openai_error_json, shape) {
  auto j = openai_error_json(fp::make_error(fp::errc::not_found, "The model `x` does not exist"));
  EXPECT_EQ(j, R"({"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}})");
  auto k = openai_error_json(fp::make_error(fp::errc::invalid_request, "bad \"q\"\n"));
  EXPECT_EQ(k, R"({"error":{"message":"bad \"q\"\n","type":"invalid_request_error","param":null,"code":null}})");
}

TEST(upstream_error_from_body, both_formats) {
  auto a = upstream_error_from_body(400, R"({"error":{"message":"bad thing","type":"invalid_request_error"}})",
                                    wire_format::openai);
  EXPECT_EQ(a.message, "bad thing");
  EXPECT_EQ(a.status(), 400);
  EXPECT_EQ(a.code, fp::errc::upstream_error);
  auto b = upstream_error_from_body(529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
                                    wire_format::anthropic);
  EXPECT_EQ(b.message, "Overloaded");
  EXPECT_EQ(b.code, fp::errc::rate_limited);
  EXPECT_EQ(b.status(), 529);
  auto c = upstream_error_from_body(503, "<html>", wire_format::openai);
  EXPECT_EQ(c.message, "upstream returned HTTP 503");
}

TEST(append_json_string, escapes) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c\x01\td\xc3\xa9", 10));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\u0001\\td\xc3\xa9\"");
}

// The body's tree lives in a per-request arena shared by its copies: a copy outlives the
// original, both can be changed independently, and a large body (beyond the arena's first block)
// parses whole.
TEST(parse_openai_request, body_copies_outlive_and_diverge_from_the_original) {
  std::string big(10000, 'x');
  auto r = parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":")" +
                                big + R"("}],"metadata":{"a":[1,2,3]}})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  (void)r->body();  // the tree built before the copy: the copy shares its arena
  request copy = *r;
  {
    request moved = std::move(*r);
    moved.mutable_body()["model"] = "changed";
    moved.mutable_body()["extra"] = boost::json::array{1, 2};
    EXPECT_EQ(moved.body().at("model").as_string(), "changed");
  }
  r = fp::make_error(fp::errc::internal, "dropped");  // the original is gone
  copy.mutable_body()["model"] = "copy";
  EXPECT_EQ(copy.body().at("model").as_string(), "copy");
  EXPECT_FALSE(copy.body().contains("extra"));
  const auto& msgs = copy.body().at("messages").as_array();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[1].as_object().at("content").as_string().size(), big.size());
  EXPECT_EQ(copy.body().at("metadata").as_object().at("a").as_array().size(), 3u);
  boost::json::object assigned;
  assigned = copy.body();  // copy-assignment into a default-storage object
  copy = request{};
  EXPECT_EQ(assigned.at("model").as_string(), "copy");
}

TEST(parse_openai_request, errors_after_a_successful_parse_do_not_disturb_it) {
  auto ok = parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(ok.has_value());
  auto bad = parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"hi"}],)");
  ASSERT_FALSE(bad.has_value());
  auto again = parse_openai_request(R"({"model":"n","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(ok->body().at("model").as_string(), "m");
  EXPECT_EQ(again->body().at("model").as_string(), "n");
}

// The body's tree is built on first use from raw_body (a request that is only forwarded never
// builds it); changing it drops raw_body, which no longer says the same.
TEST(parse_openai_request, body_tree_is_built_on_first_use) {
  const std::string text = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":[1,{"y":null}]})";
  auto r = parse_openai_request(text);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->raw_body, text);
  EXPECT_FALSE(r->body_built());
  EXPECT_EQ(r->body().at("x").as_array()[1].as_object().at("y"), nullptr);
  EXPECT_TRUE(r->body_built());
  EXPECT_EQ(r->raw_body, text);  // reading keeps it
  r->mutable_body()["model"] = "n";
  EXPECT_TRUE(r->raw_body.empty());
  EXPECT_EQ(r->body().at("model").as_string(), "n");
  r->set_body(boost::json::object{{"model", "o"}});
  EXPECT_EQ(r->body().at("model").as_string(), "o");
  request empty;
  EXPECT_TRUE(empty.body().empty());
}

TEST(parse_openai_request, owned_parse_takes_the_buffer) {
  std::string text = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  text.reserve(text.size() + 64);
  const char* buf = text.data();
  auto r = parse_owned_openai_request(std::move(text));
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->raw_body.data(), buf);  // no copy
}

TEST(parse_openai_request, raw_stream_describes_the_body_as_sent) {
  using st = request::raw_stream_fields::state;
  struct c {
    const char* extra;
    st stream;
    bool options, include_usage;
  } cases[] = {{"", st::absent, false, false},
               {R"(,"stream":false)", st::is_false, false, false},
               {R"(,"stream":true)", st::is_true, false, false},
               {R"(,"stream":null,"stream_options":null)", st::is_null, true, false},
               {R"(,"stream":true,"stream_options":{})", st::is_true, true, false},
               {R"(,"stream":true,"stream_options":{"include_usage":true})", st::is_true, true, true},
               {R"(,"stream":true,"stream_options":{"include_usage":false})", st::is_true, true, false}};
  for (const auto& k : cases) {
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}])") + k.extra + "}";
    for (auto* parse : {&parse_openai_request, &parse_openai_request_reference}) {
      auto r = parse(body, endpoint::chat_completions);
      ASSERT_TRUE(r.has_value()) << body;
      EXPECT_EQ(r->raw_stream.stream, k.stream) << body;
      EXPECT_EQ(r->raw_stream.has_options, k.options) << body;
      EXPECT_EQ(r->raw_stream.include_usage, k.include_usage) << body;
    }
  }
}

// The fast path (simdjson) and the reference (Boost.JSON tree) agree on what they accept and on
// every typed field, including where the fast path declines (deep nesting, numbers at a limit,
// integers beyond int64, duplicate keys: the last wins).
TEST(parse_openai_request, fast_path_agrees_with_the_reference) {
  std::string deep = R"({"model":"m","messages":[{"role":"user","content":"x"}],"d":)" + std::string(100, '[') +
                     std::string(100, ']') + "}";
  std::string too_deep = R"({"model":"m","messages":[{"role":"user","content":"x"}],"d":)" + std::string(200, '[') +
                         std::string(200, ']') + "}";
  const std::string cases[] = {
      R"({"model":"m","messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","model":"n","messages":[{"role":"user","content":"x"}],"stream":false,"stream":true})",
      R"({"model":"m","messages":[{"role":"user","content":"x","role":"bogus"}]})",
      R"({"model":"m","messages":[{"role":"bogus","content":"x","role":"user"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.0,"top_p":0.0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.0000000000000001})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1.99999999999999999999})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":18446744073709551615})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":-9223372036854775808})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e3,"n":1.0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":129})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":1e400})",
      R"({"model":"m","messages":[{"role":"user","content":"\ud800"}]})",
      "\xEF\xBB\xBF{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
      R"({"model":"m","messages":[{"role":"user","content":"x"}]} x)",
      R"({"model":"m","prompt":[1,-2,[3],"s"]})",
      R"({"model":"m","prompt":[1.5]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":1})",
      deep,
      too_deep,
      // The scanner's edges: escapes in keys and values, duplicates, nulls, number forms.
      R"({"mod\u0065l":"m","messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m\u00e9\n\ud83d\ude00","messages":[{"role":"us\u0065r","content":"x"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"\udc00"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"\ud800\u0041"}]})",
      "{\"model\":\"m\xc3\xa9\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\x01\"}]}",
      R"({"model":"","messages":[{"role":"user","content":"x"}]})",
      R"({"model":5,"messages":[{"role":"user","content":"x"}]})",
      R"({"model":"m","messages":[]})",
      R"({"model":"m","messages":[5]})",
      R"({"model":"m","messages":[{"content":"x"}]})",
      R"({"model":"m","messages":[{"role":"user","content":5}]})",
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}],"tool_calls":null}]})",
      R"({"model":"m","messages":[{"role":"assistant","tool_calls":{}}]})",
      R"({"model":"m","messages":[{"role":"user","content":5,"content":"x"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":null,"stream_options":null})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true},"stream_options":{}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":1}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_completion_tokens":7})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":7,"max_tokens":5})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,"max_tokens":null})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-0,"seed":-0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":-42,"n":128,"top_p":1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":999999999999999999})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":9223372036854775807})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.7,"top_p":0.95})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1.999999,"top_p":0.000001})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0.1234567})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2,"temperature":0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":7e-1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":-0.5})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b"],"tools":[{"type":"function"}],"tool_choice":"auto","response_format":{"type":"json_object"},"logprobs":true})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[1]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":"json"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":[1e99,-1.5E-99,0.0,-0,{"a":null}]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":1e100})",
      R"({"model":"m","prompt":"p","logprobs":5})",
      R"({"model":"m","prompt":[-0]})",
      R"({"model":"m","prompt":null,"messages":5})",
      R"({"model":"m","prompt":{}})",
      " \t\r\n{ \"model\" : \"m\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"x\" } ] } \n",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}])",
  };
  for (const auto& body : cases) {
    for (auto kind : {endpoint::chat_completions, endpoint::completions}) {
      auto fast = parse_openai_request(body, kind);
      auto ref = parse_openai_request_reference(body, kind);
      ASSERT_EQ(fast.has_value(), ref.has_value()) << body;
      if (!fast) {
        EXPECT_EQ(fast.error().message, ref.error().message) << body;
        continue;
      }
      EXPECT_EQ(fast->model, ref->model) << body;
      EXPECT_EQ(fast->stream, ref->stream) << body;
      EXPECT_EQ(fast->max_tokens, ref->max_tokens) << body;
      EXPECT_EQ(fast->temperature, ref->temperature) << body;
      EXPECT_EQ(fast->seed, ref->seed) << body;
      EXPECT_EQ(fast->n, ref->n) << body;
      EXPECT_EQ(fast->include_usage, ref->include_usage) << body;
      EXPECT_EQ(fast->raw_stream.stream, ref->raw_stream.stream) << body;
      EXPECT_EQ(fast->raw_stream.has_options, ref->raw_stream.has_options) << body;
      EXPECT_EQ(fast->raw_stream.include_usage, ref->raw_stream.include_usage) << body;
      EXPECT_EQ(fast->raw_body, ref->raw_body) << body;
      EXPECT_EQ(fast->body(), ref->body()) << body;
    }
  }
}
