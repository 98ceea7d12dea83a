#include <gtest/gtest.h>

#include "routing/routing.hpp"

using namespace fp::routing;

namespace {
constexpr int64_t s = 1000000000;
}

TEST(RateLimit, KeyIdIsStableAndHidesTheKey) {
  auto a = key_id("sk-secret-123");
  EXPECT_EQ(a, key_id("sk-secret-123"));
  EXPECT_NE(a, key_id("sk-secret-124"));
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find("secret"), std::string::npos);
}

TEST(RateLimit, RequestsPerMinute) {
  local_rate_limiter rl;
  rate_limit lim{60, 0};  // one per second, burst 60
  int ok = 0;
  for (int i = 0; i < 100; ++i) ok += rl.acquire("k", lim, 0, 0).allowed;
  EXPECT_EQ(ok, 60);
  auto d = rl.acquire("k", lim, 0, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limit, "requests");
  EXPECT_NEAR(d.retry_after_s, 1.0, 1e-6);
  EXPECT_TRUE(rl.acquire("k", lim, 0, 1 * s).allowed);
  EXPECT_FALSE(rl.acquire("k", lim, 0, 1 * s).allowed);
  EXPECT_TRUE(rl.acquire("other", lim, 0, 1 * s).allowed);  // per key
}

TEST(RateLimit, TokensPerMinuteAndSettle) {
  local_rate_limiter rl;
  rate_limit lim{0, 6000};  // 100 tokens/s
  EXPECT_TRUE(rl.acquire("k", lim, 5000, 0).allowed);
  auto d = rl.acquire("k", lim, 2000, 0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.limit, "tokens");
  EXPECT_NEAR(d.retry_after_s, 10.0, 1e-6);
  rl.settle("k", lim, -1000, 0);  // the request used 1000 fewer tokens than charged
  EXPECT_TRUE(rl.acquire("k", lim, 2000, 0).allowed);
  // A request larger than the bucket is charged the whole bucket, not refused forever.
  local_rate_limiter rl2;
  EXPECT_TRUE(rl2.acquire("k", lim, 100000, 0).allowed);
}

TEST(RateLimit, UnlimitedAlwaysAllows) {
  local_rate_limiter rl;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(rl.acquire("k", rate_limit{}, 1000000, 0).allowed);
}
