#include <gtest/gtest.h>

#include <algorithm>

#include "providers/mock.hpp"

using namespace fp::providers;
using fp::api::finish_reason;

namespace {
fp::api::request chat(std::string_view body) {
  auto r = fp::api::parse_openai_request(body);
  EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.error().message);
  return *r;
}

mock_plan plan_for(const std::string& profile, const fp::api::request& req, uint64_t seed, uint64_t seq) {
  std::string a, b;
  auto v = mock_view_of_openai(req, a, b);
  auto o = mock_overrides_from_body(req.body());
  EXPECT_TRUE(o.has_value());
  return make_mock_plan(*find_mock_profile(profile), seed, seq, v, *o);
}

double median_total_ms(const std::string& profile) {
  auto req = chat(R"({"model":"m","messages":[{"role":"user","content":"tell me a story"}]})");
  std::vector<double> t;
  for (uint64_t i = 0; i < 2001; ++i) t.push_back(plan_for(profile, req, 7, i).total_ns() / 1e6);
  std::nth_element(t.begin(), t.begin() + 1000, t.end());
  return t[1000];
}
}  // namespace

TEST(mock_profiles, medians_match_the_published_ranges) {
  double gpt4o = median_total_ms("gpt-4o");
  EXPECT_GE(gpt4o, 2000);
  EXPECT_LE(gpt4o, 5000);
  double mini = median_total_ms("gpt-4o-mini");
  EXPECT_GE(mini, 500);
  EXPECT_LE(mini, 1500);
  double haiku = median_total_ms("claude-3-haiku");
  EXPECT_GE(haiku, 300);
  EXPECT_LE(haiku, 1000);
  double local = median_total_ms("local-7b");
  EXPECT_GE(local, 100);
  EXPECT_LE(local, 500);
  EXPECT_EQ(median_total_ms("zero"), 0);
  EXPECT_FALSE(find_mock_profile("nope").has_value());
  EXPECT_EQ(mock_profile_names().size(), 6u);
}

TEST(mock_profiles, tail_profile_has_a_slow_five_percent) {
  auto req = chat(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  int slow = 0;
  for (uint64_t i = 0; i < 4000; ++i) {
    if (plan_for("tail", req, 3, i).ttft_ns > 300'000'000) ++slow;  // 10x the ~50 ms p50
  }
  EXPECT_GT(slow, 4000 * 0.03);
  EXPECT_LT(slow, 4000 * 0.07);
}

TEST(mock_plan, deterministic_under_seed_and_prompt) {
  auto req = chat(R"({"model":"m","messages":[{"role":"user","content":"hello"}]})");
  auto a = plan_for("gpt-4o", req, 42, 5);
  auto b = plan_for("gpt-4o", req, 42, 5);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.gaps_ns, b.gaps_ns);
  EXPECT_EQ(a.ttft_ns, b.ttft_ns);
  auto c = plan_for("gpt-4o", req, 42, 6);
  EXPECT_EQ(a.tokens, c.tokens);  // text depends on the prompt, not the sequence number
  EXPECT_NE(a.ttft_ns, c.ttft_ns);
  auto other = chat(R"({"model":"m","messages":[{"role":"user","content":"goodbye"}]})");
  EXPECT_NE(plan_for("gpt-4o", other, 42, 5).tokens, a.tokens);
}

TEST(mock_plan, max_tokens_caps_output_with_length) {
  auto req = chat(R"({"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hello"}]})");
  auto p = plan_for("zero", req, 1, 0);
  EXPECT_EQ(p.tokens.size(), 3u);
  EXPECT_EQ(p.finish, finish_reason::length);
  auto full = plan_for("zero", chat(R"({"model":"m","messages":[{"role":"user","content":"hello"}]})"), 1, 0);
  EXPECT_EQ(full.tokens.size(), 20u);
  EXPECT_EQ(full.finish, finish_reason::stop);
}

TEST(mock_plan, tool_calls_and_overrides) {
  auto no_trigger = chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})");
  EXPECT_FALSE(plan_for("zero", no_trigger, 1, 0).tool_call);
  auto phrase = chat(R"({"model":"m","messages":[{"role":"user","content":"please use a tool"}],"tools":[{"type":"function","function":{"name":"f"}}]})");
  auto p = plan_for("zero", phrase, 1, 0);
  EXPECT_TRUE(p.tool_call);
  EXPECT_EQ(p.tool_name, "f");
  EXPECT_EQ(p.finish, finish_reason::tool_calls);
  std::string joined;
  for (auto& t : p.tokens) joined += t;
  EXPECT_EQ(joined, p.tool_arguments);
  auto forced = chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})");
  EXPECT_EQ(plan_for("zero", forced, 1, 0).tool_name, "g");
  auto none = chat(R"({"model":"m","messages":[{"role":"user","content":"use a tool"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})");
  EXPECT_FALSE(plan_for("zero", none, 1, 0).tool_call);

  auto ov = chat(R"({"model":"m","messages":[{"role":"user","content":"one two three"}],"mock":{"ttft_ms":5,"itl_ms":2,"echo":true,"error_after":2,"stall_after":1,"stall_ms":7}})");
  auto q = plan_for("gpt-4o", ov, 1, 0);
  EXPECT_EQ(q.ttft_ns, 5'000'000);
  ASSERT_EQ(q.tokens.size(), 3u);
  EXPECT_EQ(q.tokens[0] + q.tokens[1] + q.tokens[2], "one two three");
  EXPECT_EQ(q.gaps_ns, (std::vector<int64_t>{2'000'000, 2'000'000}));
  EXPECT_EQ(q.error_after, 2);
  EXPECT_EQ(q.stall_after, 1);
  EXPECT_EQ(q.stall_ns, 7'000'000);
  auto bad = fp::api::parse_openai_request(R"({"model":"m","messages":[{"role":"user","content":"x"}],"mock":{"ttft_ms":"soon"}})");
  ASSERT_TRUE(bad.has_value());
  EXPECT_FALSE(mock_overrides_from_body(bad->body()).has_value());
}
