// Rate limits hold across two `fastpath serve` processes that share one Redis (the ctest redis
// fixture, tests/redis). Real sockets on 127.0.0.1 only; no sleeps; the only time-dependent bound
// (bucket refill during the test) is computed from the measured elapsed time.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <random>

#include "../integration/harness.hpp"

namespace fp::test {
namespace {

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::string s;
  std::getline(f, s);
  return s;
}

TEST(RoutingRedis, RateLimitsHoldAcrossTwoGatewayProcesses) {
  std::string dir = FASTPATH_REDIS_FIXTURE_DIR;
  std::string url = read_file(dir + "/url");
  if (url.empty()) GTEST_SKIP() << "no redis fixture (run through ctest)";
  mock_process mock("zero", "openai");
  ASSERT_TRUE(mock.ok());

  // A fresh key per run, so buckets from earlier runs never interfere.
  std::mt19937_64 rng(std::random_device{}());
  std::string key = fmt::format("test-key-{:016x}", rng());
  setenv("FP_ROUTING_TEST_KEY", key.c_str(), 1);
  std::string cfg_path = fmt::format("/tmp/fp-routing-redis-{}-{:x}.yaml", getpid(), rng());
  {
    std::ofstream f(cfg_path);
    f << fmt::format(R"(server: {{host: 127.0.0.1, port: 0, threads: 1}}
log: {{access_log: false, level: info}}
auth: {{api_keys_env: FP_ROUTING_TEST_KEY}}
providers:
  - {{name: p, kind: openai, base_url: "http://127.0.0.1:{}/v1"}}
models:
  - {{name: m, provider: p}}
routing:
  rate_limits:
    backend: redis
    redis_url: "{}"
    default: {{requests_per_minute: 10}}
)",
                     mock.port(), url);
  }
  child_process a(fastpath_binary(), {"serve", "--config", cfg_path}, child_process::stream::err);
  child_process b(fastpath_binary(), {"serve", "--config", cfg_path}, child_process::stream::err);
  uint16_t pa = a.wait_for_port();
  uint16_t pb = b.wait_for_port();
  std::remove(cfg_path.c_str());
  ASSERT_NE(pa, 0);
  ASSERT_NE(pb, 0);

  std::string body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  std::vector<std::pair<std::string, std::string>> h{{"Authorization", "Bearer " + key}};
  int ok = 0, limited = 0;
  int64_t t0 = mono_ns();
  for (int i = 0; i < 24; ++i) {
    auto r = call(i % 2 ? pb : pa, "POST", "/v1/chat/completions", body, h);
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      EXPECT_GE(std::atoi(r.headers["retry-after"].c_str()), 1);
    }
  }
  double elapsed_s = static_cast<double>(mono_ns() - t0) / 1e9;
  // One shared bucket of 10 (refilling 1 per 6 s): two separate local buckets would admit 20.
  EXPECT_GE(ok, 10);
  EXPECT_LE(ok, 10 + static_cast<int>(std::ceil(elapsed_s / 6.0)));
  EXPECT_EQ(ok + limited, 24);
}

}  // namespace
}  // namespace fp::test
