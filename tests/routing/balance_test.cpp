#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "routing/routing.hpp"

using namespace fp::routing;

namespace {
constexpr int64_t ms = 1000000;
}

TEST(Breaker, OpensAfterConsecutiveFailuresThenHalfOpensAndCloses) {
  breaker_config c;
  c.consecutive_failures = 3;
  c.open_ms = 1000;
  c.probe_successes = 2;
  c.half_open_probes = 1;
  circuit_breaker b(c);
  int64_t t = 0;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(b.try_acquire(t));
    b.on_failure(t);
  }
  EXPECT_EQ(b.state(t), breaker_state::closed);
  ASSERT_TRUE(b.try_acquire(t));
  b.on_failure(t);
  EXPECT_EQ(b.state(t), breaker_state::open);
  EXPECT_FALSE(b.try_acquire(t + 999 * ms));
  // half-open: one probe at a time
  t += 1000 * ms;
  EXPECT_EQ(b.state(t), breaker_state::half_open);
  EXPECT_TRUE(b.try_acquire(t));
  EXPECT_FALSE(b.try_acquire(t));
  b.on_success(t);
  EXPECT_EQ(b.state(t), breaker_state::half_open);
  EXPECT_TRUE(b.try_acquire(t));
  b.on_success(t);
  EXPECT_EQ(b.state(t), breaker_state::closed);
  EXPECT_EQ(b.opened_total(), 1u);
}

TEST(Breaker, FailedProbeReopensWithLongerBackoff) {
  breaker_config c;
  c.consecutive_failures = 1;
  c.open_ms = 100;
  c.max_open_ms = 1000;
  circuit_breaker b(c);
  ASSERT_TRUE(b.try_acquire(0));
  b.on_failure(0);
  ASSERT_TRUE(b.try_acquire(100 * ms));  // probe
  b.on_failure(100 * ms);
  EXPECT_EQ(b.state(100 * ms + 150 * ms), breaker_state::open);  // now 200 ms
  EXPECT_EQ(b.state(100 * ms + 200 * ms), breaker_state::half_open);
}

TEST(Breaker, FailureRateTrips) {
  breaker_config c;
  c.consecutive_failures = 100;
  c.failure_rate = 0.5;
  c.window = 10;
  c.min_requests = 10;
  circuit_breaker b(c);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(b.try_acquire(0));
    if (i % 2) b.on_failure(0);
    else b.on_success(0);
  }
  EXPECT_EQ(b.state(0), breaker_state::open);
}

TEST(Breaker, AbandonedProbeFreesTheSlot) {
  breaker_config c;
  c.consecutive_failures = 1;
  c.open_ms = 10;
  circuit_breaker b(c);
  ASSERT_TRUE(b.try_acquire(0));
  b.on_failure(0);
  ASSERT_TRUE(b.try_acquire(10 * ms));
  EXPECT_FALSE(b.try_acquire(10 * ms));
  b.on_abandon();
  EXPECT_TRUE(b.try_acquire(10 * ms));
}

TEST(Health, EwmaAndInFlightDriveCost) {
  deployment_health fast, slow;
  int64_t t = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(fast.try_start(t));
    fast.on_first_token(t, 50 * ms);
    fast.on_success(t, 50 * ms, 11, 150 * ms);
    ASSERT_TRUE(slow.try_start(t));
    slow.on_first_token(t, 800 * ms);
    slow.on_success(t, 800 * ms, 11, 900 * ms);
  }
  EXPECT_LT(fast.expected_cost_ms(t, 10), slow.expected_cost_ms(t, 10));
  EXPECT_NEAR(fast.snapshot(t).ttft_ms, 50, 1);
  EXPECT_NEAR(fast.snapshot(t).per_token_ms, 10, 0.5);
  double idle = fast.expected_cost_ms(t, 10);
  ASSERT_TRUE(fast.try_start(t));
  EXPECT_NEAR(fast.expected_cost_ms(t, 10), 2 * idle, 1e-6);
  fast.on_abandon();
  EXPECT_EQ(fast.snapshot(t).in_flight, 0);
}

TEST(Health, StaleEstimatesRelaxTowardsThePrior) {
  health_config c;
  c.prior_ttft_ms = 100;
  c.stale_after_ms = 1000;
  deployment_health h(c);
  ASSERT_TRUE(h.try_start(0));
  h.on_first_token(0, 5000 * ms);
  h.on_success(0, 5000 * ms, 1, 5000 * ms);
  EXPECT_NEAR(h.snapshot(0).ttft_ms, 5000, 1);
  EXPECT_LT(h.snapshot(10000 * ms).ttft_ms, 101);
}

TEST(Health, P95Ttft) {
  deployment_health h;
  EXPECT_LT(h.p95_ttft_ms(), 0);
  for (int i = 1; i <= 100; ++i) {
    ASSERT_TRUE(h.try_start(0));
    h.on_first_token(0, i * ms);
    h.on_success(0, i * ms, 1, i * ms);
  }
  EXPECT_NEAR(h.p95_ttft_ms(), 95, 1);
}

TEST(Balancer, TrafficShiftsAwayFromSlowDeployment) {
  deployment_health a, b;
  std::vector<candidate> c{{&a, 1}, {&b, 1}};
  p2c_balancer bal(42);
  int64_t t = 0;
  int picks_b = 0;
  for (int i = 0; i < 200; ++i, t += 10 * ms) {
    int k = bal.pick(c, t, 16);
    ASSERT_GE(k, 0);
    auto& h = k == 0 ? a : b;
    ASSERT_TRUE(h.try_start(t));
    int64_t ttft = (k == 1 ? 1000 : 50) * ms;
    h.on_first_token(t, ttft);
    h.on_success(t, ttft, 16, ttft + 150 * ms);
    if (i >= 100) picks_b += k == 1;
  }
  EXPECT_LT(picks_b, 5);  // after warm-up almost nothing goes to the slow one
}

TEST(Balancer, SkipsOpenBreakersAndExcluded) {
  health_config hc;
  hc.breaker.consecutive_failures = 1;
  deployment_health a(hc), b(hc);
  std::vector<candidate> c{{&a, 1}, {&b, 1}};
  p2c_balancer bal(1);
  ASSERT_TRUE(a.try_start(0));
  a.on_failure(0);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(bal.pick(c, 0, 1), 1);
  std::vector<uint8_t> excl{0, 1};
  EXPECT_EQ(bal.pick(c, 0, 1, excl), -1);
}

TEST(Balancer, WeightsSkewTheDraw) {
  deployment_health a, b, d;
  std::vector<candidate> c{{&a, 8}, {&b, 1}, {&d, 1}};
  p2c_balancer bal(7);
  std::map<int, int> n;
  for (int i = 0; i < 1000; ++i) ++n[bal.pick(c, 0, 1)];
  EXPECT_GT(n[0], n[1] + n[2]);
}

TEST(Budget, RetriesBoundedByRatio) {
  budget_config c{0.1, 0.0, 5};
  budget b(c);
  int granted = 0;
  for (int i = 0; i < 1000; ++i) {
    b.on_request(0);
    granted += b.try_withdraw(0);
  }
  EXPECT_LE(granted, 100 + 5);  // ratio * requests + the initial burst
  EXPECT_GE(granted, 95);
}

TEST(Budget, MinPerSecondRefillsWithTimeAndIsCapped) {
  budget_config c{0.0, 2.0, 3};
  budget b(c, 0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.try_withdraw(0));  // starts full
  EXPECT_FALSE(b.try_withdraw(0));
  EXPECT_TRUE(b.try_withdraw(500 * ms));
  EXPECT_NEAR(b.balance(100000 * ms), 3.0, 1e-9);
}

TEST(Affinity, EqualKeysStickAndLoadStaysBounded) {
  std::vector<std::string> reps{"r0", "r1", "r2", "r3"};
  affinity_ring ring(reps);
  std::vector<int> loads(4, 0);
  int first = ring.pick(12345, loads, 1.25);
  ASSERT_GE(first, 0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ring.pick(12345, loads, 1.25), first);
  // One hot key with many concurrent requests: overflow spills, nobody exceeds the bound.
  for (int i = 0; i < 40; ++i) {
    int r = ring.pick(12345, loads, 1.25);
    ASSERT_GE(r, 0);
    ++loads[r];
    int total = 0;
    for (int l : loads) total += l;
    double bound = std::ceil(1.25 * total / 4.0);
    for (int l : loads) EXPECT_LE(l, bound + 1e-9);
  }
  EXPECT_GE(loads[first], 10);
}

TEST(Affinity, KeysSpreadAndUnusableReplicasAreSkipped) {
  std::vector<std::string> reps{"a", "b", "c"};
  affinity_ring ring(reps);
  std::vector<int> loads(3, 0);
  std::map<int, int> n;
  for (uint64_t k = 1; k <= 3000; ++k) ++n[ring.pick(hash64(std::to_string(k)), loads, 1.25)];
  for (int r = 0; r < 3; ++r) EXPECT_GT(n[r], 600) << r;
  std::vector<uint8_t> usable{1, 0, 1};
  for (uint64_t k = 1; k <= 100; ++k) EXPECT_NE(ring.pick(hash64(std::to_string(k)), loads, 1.25, usable), 1);
}

TEST(Health, RateLimitedDeploymentCoolsDownThenReturns) {
  deployment_health h;
  ASSERT_TRUE(h.try_start(0));
  h.on_rate_limited(0, 2.0);
  EXPECT_FALSE(h.admits(1000 * ms));
  EXPECT_FALSE(h.try_start(1999 * ms));
  EXPECT_TRUE(h.admits(2000 * ms));
  EXPECT_EQ(h.snapshot(0).state, breaker_state::closed);  // a 429 is no health verdict
  EXPECT_EQ(h.snapshot(0).in_flight, 0);
}

TEST(Balancer, HalfOpenDeploymentGetsTheProbe) {
  health_config hc;
  hc.breaker.consecutive_failures = 1;
  hc.breaker.open_ms = 100;
  hc.breaker.probe_successes = 1;
  deployment_health a(hc), b(hc);
  std::vector<candidate> c{{&a, 1}, {&b, 1}};
  p2c_balancer bal(3);
  for (int i = 0; i < 20; ++i) {  // b is fast and well known
    ASSERT_TRUE(b.try_start(0));
    b.on_first_token(0, 1 * ms);
    b.on_success(0, 1 * ms, 2, 2 * ms);
  }
  ASSERT_TRUE(a.try_start(0));
  a.on_failure(0);
  EXPECT_EQ(bal.pick(c, 50 * ms, 1), 1);
  EXPECT_EQ(bal.pick(c, 100 * ms, 1), 0);  // half-open: probe
  ASSERT_TRUE(a.try_start(100 * ms));
  EXPECT_EQ(bal.pick(c, 100 * ms, 1), 1);  // probe slot taken
  a.on_success(101 * ms, 1 * ms, 2, 2 * ms);
  EXPECT_EQ(a.snapshot(101 * ms).state, breaker_state::closed);
}
