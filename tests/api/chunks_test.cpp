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

// ---- the single-pass scanner against the simdjson reference ------------------------------------

namespace {

// Parses text with parse_openai_chunk_into(), the per-stream parser (fresh, and after a chunk with
// the same start) and the reference; all must agree on success, error and every field.
fp::result<chunk> parse_all_ways(std::string_view text) {
  chunk ref;
  ref.content = "stale";
  auto r = parse_openai_chunk_reference_into(text, ref);
  auto check = [&](const fp::result<void>& got, const chunk& c, const char* how) {
    SCOPED_TRACE(how);
    ASSERT_EQ(got.has_value(), r.has_value()) << text;
    if (!r) {
      EXPECT_EQ(got.error().code, r.error().code);
      EXPECT_EQ(got.error().message, r.error().message);
      EXPECT_EQ(got.error().http_status, r.error().http_status);
      return;
    }
    EXPECT_EQ(c.json, ref.json);
    EXPECT_EQ(c.content, ref.content);
    EXPECT_EQ(c.finish, ref.finish);
    EXPECT_EQ(c.has_tool_calls, ref.has_tool_calls);
    ASSERT_EQ(c.usage.has_value(), ref.usage.has_value());
    if (c.usage) {
      EXPECT_EQ(c.usage->prompt_tokens, ref.usage->prompt_tokens);
      EXPECT_EQ(c.usage->completion_tokens, ref.usage->completion_tokens);
      EXPECT_EQ(c.usage->cached_prompt_tokens, ref.usage->cached_prompt_tokens);
    }
  };
  chunk a;
  a.content = "stale";
  check(parse_openai_chunk_into(text, a), a, "parse_openai_chunk_into");
  openai_chunk_parser p;
  chunk b, primer;
  check(p.parse_into(text, b), b, "openai_chunk_parser, first");
  check(p.parse_into(text, b), b, "openai_chunk_parser, again");
  (void)p.parse_into(R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[]})", primer);
  check(p.parse_into(text, b), b, "openai_chunk_parser, after another chunk");
  if (!r) return r.error();
  return ref;
}

std::string with_content(std::string_view raw_json_string_body) {
  return std::string(R"({"id":"x","choices":[{"index":0,"delta":{"content":")") + std::string(raw_json_string_body) +
         R"("},"finish_reason":null}]})";
}

}  // namespace

TEST(parse_openai_chunk_scanner, escapes) {
  auto a = parse_all_ways(with_content(R"(say \"hi\"\\ \/ \b\f\n\r\t)"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->content, "say \"hi\"\\ / \b\f\n\r\t");
  auto u = parse_all_ways(with_content(R"(\u00e9\u20AC\u0041\u0000z)"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->content, std::string("\xc3\xa9\xe2\x82\xac" "A\0z", 8));
  auto pair = parse_all_ways(with_content(R"(\ud83d\ude00!)"));
  ASSERT_TRUE(pair.has_value());
  EXPECT_EQ(pair->content, "\xf0\x9f\x98\x80!");
  auto raw = parse_all_ways(with_content("caf\xc3\xa9 \xe2\x9c\x93"));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->content, "caf\xc3\xa9 \xe2\x9c\x93");
  // Unpaired surrogates, bad escapes, raw control characters, invalid UTF-8: the reference decides.
  for (std::string_view body : {R"(\ud800)", R"(\ud800x)", R"(\udc00)", R"(\ud83d\u0041)", R"(\x)", R"(\u12)",
                                R"(\u12G4)", "a\x01" "b", "\xc3", "\xff", "\xed\xa0\x80"})
    (void)parse_all_ways(with_content(body));
  // Escapes in a skipped string and in a key.
  ASSERT_TRUE(parse_all_ways(R"({"id":"\u0041\ud800","choices":[{"delta":{"content":"x"}}]})").has_value());
  auto k = parse_all_ways(R"({"choices":[{"delta":{"cont\u0065nt":"k"}}]})");
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->content, "k");
}

TEST(parse_openai_chunk_scanner, shapes) {
  // Whitespace everywhere, numbers of every form in skipped places, nested values in unexpected fields.
  auto w = parse_all_ways(
      " \t\r\n{ \"id\" : \"x\" ,\n \"created\" : -12.5e+3 , \"n\" : [0, -0, 1E9, 0.25, {\"a\":[[]]}, true, false, null] ,"
      " \"choices\" : [ { \"delta\" : { \"content\" : \"a\" , \"x\" : { \"content\" : \"no\" } } , \"finish_reason\" : \"stop\" } ,"
      " { \"delta\" : { \"content\" : \"second choice\" } } ] } \n");
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->content, "a");
  EXPECT_EQ(w->finish, finish_reason::stop);
  // Duplicate keys: whatever the reference does (content appended, the last finish_reason wins).
  auto d = parse_all_ways(R"({"choices":[{"delta":{"content":"a","content":"b"},"text":"c","finish_reason":"stop","finish_reason":"length"}],"choices":[{"delta":{"content":"d"}}]})");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->content, "abcd");
  EXPECT_EQ(d->finish, finish_reason::length);
  (void)parse_all_ways(R"({"usage":{"prompt_tokens":1},"usage":null,"usage":{"completion_tokens":2}})");
  // tool_calls / function_call: any non-null value counts.
  EXPECT_TRUE(parse_all_ways(R"({"choices":[{"delta":{"tool_calls":[]}}]})")->has_tool_calls);
  EXPECT_TRUE(parse_all_ways(R"({"choices":[{"message":{"function_call":0}}]})")->has_tool_calls);
  EXPECT_FALSE(parse_all_ways(R"({"choices":[{"delta":{"tool_calls":null}}]})")->has_tool_calls);
  // Usage: nulls, details, number forms the reference refuses.
  auto u = parse_all_ways(R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":null,"total_tokens":7,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":3}}})");
  ASSERT_TRUE(u.has_value());
  ASSERT_TRUE(u->usage);
  EXPECT_EQ(u->usage->prompt_tokens, 7);
  EXPECT_EQ(u->usage->completion_tokens, 0);
  EXPECT_EQ(u->usage->cached_prompt_tokens, 3);
  for (std::string_view t : {R"({"usage":{"prompt_tokens":1.0}})", R"({"usage":{"prompt_tokens":-1}})",
                             R"({"usage":{"prompt_tokens":1e2}})", R"({"usage":{"prompt_tokens":"1"}})",
                             R"({"usage":{"prompt_tokens":999999999999999999}})",
                             R"({"usage":{"prompt_tokens":9223372036854775807}})",
                             R"({"usage":{"prompt_tokens":9223372036854775808}})", R"({"usage":{"prompt_tokens":00}})",
                             R"({"usage":{"prompt_tokens_details":[]}})", R"({"usage":[]})", R"({"usage":{"prompt_tokens_details":null}})"})
    (void)parse_all_ways(t);
  // Nesting deeper than the scanner takes.
  std::string deep = R"({"x":)" + std::string(100, '[') + std::string(100, ']') + R"(,"choices":[{"text":"t"}]})";
  ASSERT_TRUE(parse_all_ways(deep).has_value());
  EXPECT_EQ(parse_all_ways(deep)->content, "t");
  // Finish reasons, with an escape and unknown.
  EXPECT_EQ(parse_all_ways(R"({"choices":[{"finish_reason":"st\u006fp"}]})")->finish, finish_reason::stop);
  EXPECT_EQ(parse_all_ways(R"({"choices":[{"finish_reason":"function_call"}]})")->finish, finish_reason::tool_calls);
  EXPECT_EQ(parse_all_ways(R"({"choices":[{"finish_reason":"eos"}]})")->finish, finish_reason::none);
  EXPECT_TRUE(parse_all_ways("{}").has_value());
  EXPECT_TRUE(parse_all_ways(R"({"error":null,"choices":[]})").has_value());
}

TEST(parse_openai_chunk_scanner, invalid_json_same_errors) {
  for (std::string_view t :
       {"", " ", "{", "}", "[]", "null", "\"s\"", "{\"choices\":[]", "{\"choices\":[]}x", "{\"choices\":[]},",
        "{\"choices\":[],}", "{\"choices\" []}", "{choices:[]}", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",
        "{\"a\":-}", "{\"a\":1e}", "{\"a\":tru}", "{\"a\":nul}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":\"x}",
        "{\"a\":\"x\\\"}", "{\"choices\":5}", "{\"choices\":[5]}", "{\"choices\":[null]}", "{\"choices\":[{\"delta\":5}]}",
        "{\"choices\":[{\"delta\":{\"content\":5}}]}", "{\"choices\":[{\"text\":[]}]}",
        "{\"choices\":[{\"finish_reason\":1}]}", "{\"error\":{\"message\":\"overloaded\"}}", "{\"error\":\"boom\"}",
        "{\"choices\":[],\"error\":{\"message\":\"late\"}}", "{\"a\":1}\x00", "\xef\xbb\xbf{}", "{\"a\":\"\xc3\"}"}) {
    (void)parse_all_ways(t);
  }
  auto e = parse_all_ways(R"({"id":"x","error":{"message":"overloaded","type":"server_error"}})");
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "overloaded");
}

TEST(openai_chunk_parser, stream_of_chunks) {
  chunk_meta m;
  m.id = "chatcmpl-9";
  m.created = 1700000001;
  m.model = "gpt-4o";
  m.system_fingerprint = "fp_1";
  openai_chunk_parser p;
  chunk c;
  chunk_delta role;
  role.role = "assistant";
  role.content = "";
  ASSERT_TRUE(p.parse_into(make_chat_chunk_json(m, role), c).has_value());
  std::string all;
  for (std::string_view piece : {"Hel", "lo \"", "w\xc3\xa9rld\"\n"}) {
    chunk_delta d;
    d.content = piece;
    ASSERT_TRUE(p.parse_into(make_chat_chunk_json(m, d), c).has_value());
    EXPECT_EQ(c.content, piece);
    all += c.content;
  }
  EXPECT_EQ(all, "Hello \"w\xc3\xa9rld\"\n");
  chunk_delta fin;
  fin.finish = finish_reason::stop;
  ASSERT_TRUE(p.parse_into(make_chat_chunk_json(m, fin), c).has_value());
  EXPECT_EQ(c.finish, finish_reason::stop);
  EXPECT_EQ(c.content, "");
  ASSERT_TRUE(p.parse_into(make_usage_chunk_json(m, fp::api::usage{5, 4, 1}), c).has_value());
  ASSERT_TRUE(c.usage);
  EXPECT_EQ(c.usage->completion_tokens, 4);
  // The same start followed by something invalid, and by an error object: still rejected.
  std::string start = make_chat_chunk_json(m, fin);
  start.resize(start.find("\"choices\""));
  EXPECT_FALSE(p.parse_into(start + "\"choices\":[}", c).has_value());
  auto e = p.parse_into(start + R"("error":{"message":"mid-stream failure"}})", c);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().message, "mid-stream failure");
  // A different stream after reset().
  p.reset();
  m.id = "chatcmpl-10";
  chunk_delta d;
  d.content = "x";
  ASSERT_TRUE(p.parse_into(make_chat_chunk_json(m, d), c).has_value());
  EXPECT_EQ(c.content, "x");
  EXPECT_EQ(c.json, make_chat_chunk_json(m, d));
}

TEST(openai_chunk_parser, same_shape_other_content) {
  // After a chunk whose content came from one string, chunks with the same bytes around another
  // string only have that string read: every variant must still give the reference's answer.
  std::string_view shapes[] = {
      R"({"id":"x","choices":[{"index":0,"delta":{"content":"@"},"logprobs":null,"finish_reason":null}]})",
      R"({"id":"x","choices":[{"index":0,"delta":{"content":"@","tool_calls":[]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3}})",
      R"({"id":"x","choices":[{"text":"@","index":0}]})",
      R"({"choices":[{"delta":{"content":"@"}},{"delta":{"content":"second"}}]})"};
  std::string_view strings[] = {R"("a")", R"("")", R"("b\"c")", R"("\u00e9\ud83d\ude00")", "\"caf\xc3\xa9\"", "\"\xc3\"",
                                R"("\ud800")", R"("x"},"y":"z")", R"("x","content":"y")", R"("a\")", R"(null)", R"(5)",
                                "\"a\x01\"", R"("a" )", R"(" ")"};
  for (auto shape : shapes) {
    size_t at = shape.find('@');
    for (auto first : strings) {
      for (auto second : strings) {
        std::string a = std::string(shape.substr(0, at - 1)) + std::string(first) + std::string(shape.substr(at + 2));
        std::string b = std::string(shape.substr(0, at - 1)) + std::string(second) + std::string(shape.substr(at + 2));
        SCOPED_TRACE(a + " then " + b);
        openai_chunk_parser p;
        chunk ca, cb, ref;
        auto ra = p.parse_into(a, ca);
        auto rb = p.parse_into(b, cb);
        auto rr = parse_openai_chunk_reference_into(b, ref);
        ASSERT_EQ(rb.has_value(), rr.has_value());
        if (!rr) {
          EXPECT_EQ(rb.error().message, rr.error().message);
          continue;
        }
        EXPECT_EQ(cb.json, b);
        EXPECT_EQ(cb.content, ref.content);
        EXPECT_EQ(cb.finish, ref.finish);
        EXPECT_EQ(cb.has_tool_calls, ref.has_tool_calls);
        EXPECT_EQ(cb.usage.has_value(), ref.usage.has_value());
        if (cb.usage) EXPECT_EQ(cb.usage->prompt_tokens, ref.usage->prompt_tokens);
      }
    }
  }
}

namespace {
// parse_openai_response (the scanner, then the reference) against parse_openai_response_reference.
fp::result<response> response_both_ways(std::string_view text) {
  auto fast = parse_openai_response(text);
  auto ref = parse_openai_response_reference(std::string(text));
  EXPECT_EQ(fast.has_value(), ref.has_value()) << text;
  if (!fast || !ref) {
    if (!fast && !ref) {
      EXPECT_EQ(fast.error().message, ref.error().message) << text;
      EXPECT_EQ(fast.error().code, ref.error().code) << text;
      EXPECT_EQ(fast.error().http_status, ref.error().http_status) << text;
    }
    return fast;
  }
  EXPECT_EQ(fast->json, ref->json) << text;
  EXPECT_EQ(fast->content, ref->content) << text;
  EXPECT_EQ(fast->finish, ref->finish) << text;
  EXPECT_EQ(fast->usage.has_value(), ref->usage.has_value()) << text;
  if (fast->usage && ref->usage) {
    EXPECT_EQ(fast->usage->prompt_tokens, ref->usage->prompt_tokens) << text;
    EXPECT_EQ(fast->usage->completion_tokens, ref->usage->completion_tokens) << text;
    EXPECT_EQ(fast->usage->cached_prompt_tokens, ref->usage->cached_prompt_tokens) << text;
  }
  return fast;
}
}  // namespace

TEST(parse_openai_response_scanner, agrees_with_the_reference) {
  usage u;
  u.prompt_tokens = 12;
  u.completion_tokens = 5;
  u.cached_prompt_tokens = 4;
  auto chat = response_both_ways(make_chat_response_json(meta(), "Hello \"there\" \xc3\xa9\n", {}, finish_reason::stop, u));
  ASSERT_TRUE(chat.has_value());
  EXPECT_EQ(chat->content, "Hello \"there\" \xc3\xa9\n");
  EXPECT_EQ(chat->finish, finish_reason::stop);
  ASSERT_TRUE(chat->usage);
  EXPECT_EQ(chat->usage->cached_prompt_tokens, 4);
  auto text = response_both_ways(make_completion_response_json(meta(), "legacy", finish_reason::length, u));
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(text->content, "legacy");
  EXPECT_EQ(text->finish, finish_reason::length);
  tool_call tc{"call_1", "f", R"({"a":1})"};
  EXPECT_TRUE(response_both_ways(make_chat_response_json(meta(), "", {&tc, 1}, finish_reason::tool_calls, u)).has_value());
  for (std::string_view t :
       {R"({"id":"x","choices":[]})", R"({"id":"x"})", "{}", R"({"choices":null})", R"({"choices":{}})",
        R"({"choices":[{"message":{"content":null}}],"usage":null})",
        R"({"choices":[{"message":{"content":"a"}}],"choices":[{"message":{"content":"b"}}]})",
        R"({"choices":[{"message":{"content":"a"},"finish_reason":"stop"},{"message":{"content":"b"}}]})",
        R"({"error":{"message":"rate limited","type":"requests"}})", R"({"error":"boom","choices":[]})",
        R"({"error":null,"choices":[{"text":"t"}]})", R"({"choices":[{"text":"t"}],"error":{"message":"late"}})",
        R"({"choices":[{"text":"\ud83d\ude00 \u00e9"}]})", R"({"choices":[{"text":"\ud83d"}]})",
        R"({"choices":[{"text":"\udc00"}]})", R"({"choices":[],"x":1e400})", R"({"choices":[],"x":1e99})",
        R"({"choices":[],"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":2}}})",
        R"({"choices":[],"usage":{"prompt_tokens":1.5}})", " {\"choices\" : [ ] } ", "{\"choices\":[]} x", "{",
        "", "[]", "{\"choices\":[{\"text\":\"\xc3\"}]}", "{\"choices\":[{\"text\":\"\xed\xa0\x80\"}]}"})
    (void)response_both_ways(t);
  auto e = response_both_ways(R"({"error":{"message":"nope"}})");
  ASSERT_FALSE(e.has_value());
  auto none = response_both_ways(R"({"id":"x","object":"chat.completion"})");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().message, "the upstream response has no 'choices'");
}
