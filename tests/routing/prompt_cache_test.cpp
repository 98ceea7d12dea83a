#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "routing/routing.hpp"

using namespace fp::routing;
namespace json = boost::json;

TEST(PromptCache, AddsBreakpointsToLongSystemAndTools) {
  std::string sys(5000, 'a');
  json::object body{{"model", "claude"},
                    {"system", sys},
                    {"tools", json::array{json::object{{"name", "t1"}, {"description", std::string(5000, 'd')}}}},
                    {"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
  prompt_cache_config c;
  c.anthropic_cache_control = true;
  EXPECT_EQ(add_anthropic_cache_control(body, c), 2);
  ASSERT_TRUE(body["system"].is_array());
  EXPECT_EQ(body["system"].as_array()[0].as_object()["cache_control"].as_object()["type"], "ephemeral");
  EXPECT_EQ(body["system"].as_array()[0].as_object()["text"].as_string(), sys);
  EXPECT_TRUE(body["tools"].as_array()[0].as_object().contains("cache_control"));
  EXPECT_EQ(add_anthropic_cache_control(body, c), 0);  // idempotent
}

TEST(PromptCache, ShortOrDisabledIsUntouched) {
  std::string in = R"({"system":"be brief","messages":[]})";
  prompt_cache_config c;
  c.anthropic_cache_control = true;
  int added = -1;
  EXPECT_EQ(add_anthropic_cache_control(in, c, &added), in);
  EXPECT_EQ(added, 0);
  c.anthropic_cache_control = false;
  std::string lng = R"({"system":")" + std::string(9000, 'x') + R"("})";
  EXPECT_EQ(add_anthropic_cache_control(lng, c), lng);
  EXPECT_EQ(add_anthropic_cache_control("not json", prompt_cache_config{true, 1}), "not json");
}

TEST(PromptCache, PrefixKeyEqualForEqualPrefixes) {
  std::string sys(3000, 's');
  auto mk = [&](std::string user) {
    return json::object{{"messages", json::array{json::object{{"role", "system"}, {"content", sys}},
                                                 json::object{{"role", "user"}, {"content", user}}}}};
  };
  auto k1 = prefix_key(mk("question one"), 2048, 512);
  auto k2 = prefix_key(mk("a different question"), 2048, 512);
  EXPECT_NE(k1, 0u);
  EXPECT_EQ(k1, k2);  // only the first 2 KiB (the system prompt) counts
  auto other = json::object{{"messages", json::array{json::object{{"role", "system"}, {"content", std::string(3000, 't')}}}}};
  EXPECT_NE(prefix_key(other, 2048, 512), k1);
  auto short_body = json::object{{"messages", json::array{json::object{{"role", "user"}, {"content", "hi"}}}}};
  EXPECT_EQ(prefix_key(short_body, 2048, 512), 0u);
}
