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

// `fastpath <args>` as a child; `port_from_stderr` waits for "listening on http://HOST:PORT".
class child {
 public:
  explicit child(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      int devnull = open("/dev/null", O_WRONLY);
      if (devnull >= 0) dup2(devnull, 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(FASTPATH_BINARY));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(FASTPATH_BINARY, argv.data());
      _exit(127);
    }
    close(fds[1]);
    err_ = fdopen(fds[0], "r");
  }
  ~child() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (err_) std::fclose(err_);
  }
  uint16_t port_from_stderr() {
    char line[1024];
    for (int i = 0; i < 200 && err_ && std::fgets(line, sizeof line, err_); ++i) {
      std::string_view l(line);
      auto p = l.find("listening on http://");
      if (p == std::string_view::npos) continue;
      auto c = l.find(':', p + 20);
      if (c != std::string_view::npos) return static_cast<uint16_t>(std::atoi(line + c + 1));
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
  FILE* err_ = nullptr;
};

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
  child a({"serve", "--config", cfg_path});
  child b({"serve", "--config", cfg_path});
  uint16_t pa = a.port_from_stderr();
  uint16_t pb = b.port_from_stderr();
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
