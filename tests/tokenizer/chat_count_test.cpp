// Chat-request token counting against the figures in OpenAI's cookbook ("How to count tokens
// with tiktoken": 129 prompt tokens for gpt-3.5-turbo / gpt-4, 124 for gpt-4o, as billed).
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>

#include "tokenizer/tokenizer.hpp"

using namespace fp::tokenizer;

namespace {

boost::json::object request(std::string_view model) {
  auto v = boost::json::parse(R"({"messages":[
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
  ]})").as_object();
  v["model"] = model;
  return v;
}

}  // namespace

class ChatCount : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(FASTPATH_SHARED_DIR) + "/tokenizers";
    if (!std::filesystem::exists(dir + "/o200k_base.tiktoken")) GTEST_SKIP() << "shared data absent: " << dir;
    set_tiktoken_dir(dir);
  }
};

TEST_F(ChatCount, CookbookExample) {
  for (const auto& [model, want] : {std::pair{"gpt-3.5-turbo-0613", 129}, std::pair{"gpt-4", 129},
                                    std::pair{"gpt-4o", 124}, std::pair{"gpt-4o-mini", 124}}) {
    auto r = count_chat_request(request(model));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->prompt_tokens, want) << model;
    EXPECT_TRUE(r->exact);
  }
}

TEST_F(ChatCount, ToolsAndImagesAreEstimates) {
  auto body = request("gpt-4o");
  auto tools = boost::json::parse(R"([{"type":"function","function":{"name":"get_weather",
    "description":"Get the weather.","parameters":{"type":"object","properties":{
    "city":{"type":"string","description":"City name"},
    "unit":{"type":"string","enum":["c","f"],"description":"Unit"}}}}}])");
  body["tools"] = tools;
  auto r = count_chat_request(body);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->exact);
  EXPECT_GT(r->prompt_tokens, 124 + 12);

  auto img = boost::json::parse(R"({"model":"gpt-4o","messages":[{"role":"user","content":[
    {"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:x","detail":"low"}}]}]})").as_object();
  auto ri = count_chat_request(img);
  ASSERT_TRUE(ri.has_value());
  EXPECT_FALSE(ri->exact);
  EXPECT_GE(ri->prompt_tokens, 85 + 3 + 3);
}

TEST_F(ChatCount, UnknownModelAndBadRequest) {
  auto r = count_chat_request(request("llama-3-70b"));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->exact);
  EXPECT_EQ(r->encoding, "o200k_base");
  boost::json::object bad;
  bad["model"] = "gpt-4o";
  EXPECT_FALSE(count_chat_request(bad).has_value());
}
