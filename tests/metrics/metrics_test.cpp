#include "metrics/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace m = fp::metrics;

TEST(Metrics, CounterIsSharedByNameAndLabels) {
  auto& a = m::get_counter("fastpath_test_requests_total", "Requests.", {{"model", "x"}});
  auto& b = m::get_counter("fastpath_test_requests_total", "Requests.", {{"model", "x"}});
  auto& c = m::get_counter("fastpath_test_requests_total", "Requests.", {{"model", "y"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.inc();
  b.inc(2);
  EXPECT_EQ(a.value(), 3u);
  EXPECT_EQ(c.value(), 0u);
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  auto& c = m::get_counter("fastpath_test_concurrent_total", "x");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.value(), 40000u);
}

TEST(Metrics, HistogramBucketsAndExposition) {
  static const double bounds[] = {0.1, 1.0};
  auto& h = m::get_histogram("fastpath_test_latency_seconds", "Latency.", {{"p", "a\"b"}}, bounds);
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 5.55);
  std::string text = m::render_prometheus();
  EXPECT_NE(text.find("# TYPE fastpath_test_latency_seconds histogram"), std::string::npos);
  EXPECT_NE(text.find("fastpath_test_latency_seconds_bucket{p=\"a\\\"b\",le=\"0.1\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("fastpath_test_latency_seconds_bucket{p=\"a\\\"b\",le=\"1\"} 2"), std::string::npos);
  EXPECT_NE(text.find("fastpath_test_latency_seconds_bucket{p=\"a\\\"b\",le=\"+Inf\"} 3"), std::string::npos);
  EXPECT_NE(text.find("fastpath_test_latency_seconds_count{p=\"a\\\"b\"} 3"), std::string::npos);
}

TEST(Metrics, QuantileInterpolatesWithinBucket) {
  static const double bounds[] = {1.0, 2.0, 3.0};
  auto& h = m::get_histogram("fastpath_test_q_seconds", "q", {}, bounds);
  EXPECT_TRUE(std::isnan(h.quantile(0.5)));
  for (int i = 0; i < 10; ++i) h.observe(1.5);
  double q = h.quantile(0.5);
  EXPECT_GT(q, 1.0);
  EXPECT_LE(q, 2.0);
}

TEST(Metrics, GaugeSetAndAdd) {
  auto& g = m::get_gauge("fastpath_test_inflight", "In flight.");
  g.set(2);
  g.add(1.5);
  g.add(-0.5);
  EXPECT_DOUBLE_EQ(g.value(), 3.0);
}

// Observations from many threads (more than the per-thread shards, so some share the atomic
// one) are all counted, in the right buckets, with the exact sum.
TEST(Metrics, ConcurrentHistogramObservationsAreNotLost) {
  const double bounds[] = {1.0, 10.0};
  fp::metrics::histogram h(bounds);
  constexpr int threads = 80, per = 500;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&h, t] {
      for (int i = 0; i < per; ++i) h.observe(t % 2 == 0 ? 0.5 : 5.0);
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(h.count(), uint64_t{threads} * per);
  EXPECT_EQ(h.bucket(0), uint64_t{threads / 2} * per);
  EXPECT_EQ(h.bucket(1), uint64_t{threads / 2} * per);
  EXPECT_EQ(h.bucket(2), 0u);
  EXPECT_DOUBLE_EQ(h.sum(), (threads / 2) * per * 0.5 + (threads / 2) * per * 5.0);
}
