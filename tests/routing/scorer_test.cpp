#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <fstream>
#include <string>

#include "routing/routing.hpp"

using namespace fp::routing;

namespace {

double score_of(std::string_view text) {
  complexity_scorer s;
  score_input in;
  in.text = text;
  return s.score(in).score;
}

int tier_of(std::string_view text) {
  return tier_map::defaults("s", "m", "l").index(score_of(text));
}

}  // namespace

TEST(Scorer, ScoreIsInUnitInterval) {
  const std::string huge(20000, 'x');
  for (std::string_view q : {std::string_view(""), std::string_view("hi"),
                             std::string_view("Prove that every group of prime order is cyclic."),
                             std::string_view(huge)}) {
    double s = score_of(q);
    EXPECT_GE(s, 0.0);
    EXPECT_LE(s, 1.0);
  }
}

// Queries written for this test (not from the evaluation set), one per kind of the labelling rules.
TEST(Scorer, UnseenQueriesLandOnPlausibleTiers) {
  EXPECT_EQ(tier_of("What is the capital of Peru?"), 0);
  EXPECT_EQ(tier_of("What does NASA stand for?"), 0);
  EXPECT_EQ(tier_of("Thank you so much!"), 0);
  EXPECT_EQ(tier_of("How many centimeters are in a meter?"), 0);
  EXPECT_EQ(tier_of("Explain how a refrigerator keeps food cold."), 1);
  EXPECT_EQ(tier_of("Write a Python function that checks whether a string is a palindrome."), 1);
  EXPECT_EQ(tier_of("Prove that the square root of 2 is irrational."), 2);
  EXPECT_EQ(tier_of("Design a distributed job scheduler that guarantees each job runs exactly once "
                    "even when workers crash, and explain the trade-offs of your design."),
            2);
}

TEST(Scorer, LongPastedTextWithTrivialQuestionStaysCheap) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The quarterly report lists revenue, costs and staffing for each region. ";
  text += "\n\nWhat is the title of this report?";
  EXPECT_EQ(tier_of(text), 0);
}

TEST(Scorer, ReasonsExplainTheDecision) {
  complexity_scorer s;
  score_input in;
  in.text = "What is the capital of Peru?";
  auto r = s.score(in);
  EXPECT_GE(r.reason_count, 1);
  EXPECT_NE(r.reasons_joined().find("short"), std::string::npos) << r.reasons_joined();
  in.text = "Prove that there are infinitely many primes.";
  r = s.score(in);
  EXPECT_NE(r.reasons_joined().find("proof"), std::string::npos) << r.reasons_joined();
}

TEST(Scorer, ToolsAndDepthRaiseTheScore) {
  complexity_scorer s;
  score_input in;
  in.text = "Book me a table for two tonight.";
  double base = s.score(in).score;
  in.tools = 3;
  in.turns = 9;
  EXPECT_GT(s.score(in).score, base);
}

TEST(Scorer, CustomTokenCounterIsUsed) {
  int calls = 0;
  complexity_scorer s(scorer_weights::defaults(), [&](std::string_view t) {
    ++calls;
    return static_cast<int64_t>(t.size());
  });
  score_input in;
  in.text = "hello there";
  (void)s.score(in);
  EXPECT_GT(calls, 0);
}

TEST(Scorer, EstimateTokens) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("abcdefgh"), 2);
  EXPECT_EQ(estimate_tokens("你好"), 2);
}

TEST(Tiers, DefaultBoundaries) {
  auto m = tier_map::defaults("small", "mid", "strong");
  EXPECT_EQ(m.pick(0.0).model, "small");
  EXPECT_EQ(m.pick(0.29).model, "small");
  EXPECT_EQ(m.pick(0.3).model, "mid");
  EXPECT_EQ(m.pick(0.7).model, "mid");
  EXPECT_EQ(m.pick(0.71).model, "strong");
  EXPECT_EQ(m.pick(1.0).model, "strong");
}

// The acceptance figures on the shared evaluation set (skipped when absent).
TEST(Scorer, SharedEvaluationSetMeetsTargets) {
  std::string path = std::string(FASTPATH_SHARED_DIR) + "/data/routing-queries.jsonl";
  std::ifstream f(path);
  if (!f) GTEST_SKIP() << "no " << path;
  complexity_scorer s;
  auto tiers = tier_map::defaults("s", "m", "l");
  int n = 0, exact = 0, complex_n = 0, complex_small = 0;
  std::string line;
  while (std::getline(f, line)) {
    auto v = boost::json::parse(line).as_object();
    std::string q(v.at("query").as_string());
    std::string l(v.at("label").as_string());
    int y = l == "simple" ? 0 : l == "moderate" ? 1 : 2;
    score_input in;
    in.text = q;
    int p = tiers.index(s.score(in).score);
    ++n;
    exact += p == y;
    if (y == 2) {
      ++complex_n;
      complex_small += p == 0;
    }
  }
  ASSERT_GT(n, 100);
  EXPECT_GE(static_cast<double>(exact) / n, 0.75);
  EXPECT_LE(static_cast<double>(complex_small) / complex_n, 0.05);
}
