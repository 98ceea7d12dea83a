// Routing over real sockets: `fastpath mock` children on 127.0.0.1 (port 0), the gateway in-process
// on port 0 with the routing engine installed through the gateway's seams, a from-scratch blocking
// client (tests/integration/harness.hpp). Breaker time runs on a manual clock where a test needs to
// control it; no sleeps are used to synchronise and nothing asserts on wall-clock speed.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "../integration/harness.hpp"
#include "gateway/gateway.hpp"
#include "metrics/metrics.hpp"
#include "routing/routing.hpp"

namespace fp::test {
namespace {

namespace bj = boost::json;

// A clock that only moves when told to.
class manual_clock final : public fp::clock {
 public:
  int64_t now_ns() const noexcept override { return t_.load(); }
  int64_t wall_ms() const noexcept override { return system_clock::instance().wall_ms(); }
  void advance_ms(int64_t ms) { t_ += ms * 1000000; }

 private:
  std::atomic<int64_t> t_{1000000000};
};

// `fastpath mock` on a chosen port (0: any): a child process (tests/fakes/process.hpp) whose port
// comes from its "listening" line.
class mock_on_port {
 public:
  mock_on_port(const std::string& profile, uint16_t port)
      : proc_(FASTPATH_BINARY, {"mock", "--host", "127.0.0.1", "--port", std::to_string(port), "--profile", profile,
                                "--threads", "1"}) {
    proc_.wait_for_port();
  }
  uint16_t port() const { return proc_.port(); }
  bool ok() const { return proc_.port() != 0; }

 private:
  fp::test::child_process proc_;
};

struct gw_instance {
  std::unique_ptr<gateway::gateway> gw;
  std::shared_ptr<routing::routing_engine> eng;
  uint16_t port = 0;
  ~gw_instance() {
    if (gw) {
      gw->stop();
      gw->wait();
    }
  }
};

std::unique_ptr<gw_instance> start_gateway(const std::string& yaml, const fp::clock* clk = nullptr) {
  auto inst = std::make_unique<gw_instance>();
  auto cfg = gateway::config_from_yaml(yaml);
  EXPECT_TRUE(cfg) << (cfg ? "" : cfg.error().message);
  if (!cfg) return nullptr;
  auto node = cfg->yaml;
  auto gw = gateway::gateway::create(std::move(*cfg));
  EXPECT_TRUE(gw) << (gw ? "" : gw.error().message);
  if (!gw) return nullptr;
  inst->gw = std::move(*gw);
  if (clk) {
    auto* g = inst->gw.get();
    inst->eng = std::make_shared<routing::routing_engine>(
        routing::parse_routing_config((*node)["routing"]), [g](std::string_view m) { return g->deployments_of(m); },
        clk);
    inst->gw->add_request_stage(inst->eng->stage());
    inst->gw->set_router(inst->eng->router());
  } else {
    inst->eng = routing::attach(*inst->gw);
  }
  auto port = inst->gw->start();
  EXPECT_TRUE(port);
  if (!port) return nullptr;
  inst->port = *port;
  return inst;
}

std::string server_head() {
  return "server: {host: 127.0.0.1, port: 0, threads: 1}\nlog: {access_log: false, level: error}\n";
}

std::string provider(const std::string& name, uint16_t port, const std::string& headers = "") {
  return fmt::format("  - {{name: {}, kind: openai, base_url: \"http://127.0.0.1:{}/v1\", "
                     "timeouts: {{connect_ms: 2000, first_byte_ms: 10000}}{}}}\n",
                     name, port, headers.empty() ? "" : ", headers: {" + headers + "}");
}

std::string chat_body(const std::string& model, const std::string& user, const std::string& system = "",
                      const std::string& extra = "") {
  bj::array msgs;
  if (!system.empty()) msgs.push_back(bj::object{{"role", "system"}, {"content", system}});
  msgs.push_back(bj::object{{"role", "user"}, {"content", user}});
  bj::object o{{"model", model}, {"stream", true}, {"messages", std::move(msgs)}};
  std::string s = bj::serialize(o);
  if (!extra.empty()) s = s.substr(0, s.size() - 1) + "," + extra + "}";
  return s;
}

reply chat(uint16_t port, const std::string& body, const std::vector<std::pair<std::string, std::string>>& h = {}) {
  return call(port, "POST", "/v1/chat/completions", body, h);
}

// deployment=NAME from x-fastpath-route
std::string served_by(const reply& r) {
  auto it = r.headers.find("x-fastpath-route");
  if (it == r.headers.end()) return "";
  auto p = it->second.find("deployment=");
  if (p == std::string::npos) return "";
  auto e = it->second.find(' ', p);
  return it->second.substr(p + 11, e == std::string::npos ? std::string::npos : e - p - 11);
}

// One clean stream: chunks, content, [DONE] at the end and no error event.
::testing::AssertionResult clean_stream(const reply& r) {
  if (r.status != 200) return ::testing::AssertionFailure() << "status " << r.status << " body " << r.body;
  auto ev = sse_data(r.body);
  if (ev.empty() || ev.back() != "[DONE]") return ::testing::AssertionFailure() << "no [DONE]: " << r.body;
  int roles = 0;
  std::string content;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    boost::system::error_code jec;
    auto v = bj::parse(ev[i], jec);
    if (!v.is_object()) return ::testing::AssertionFailure() << "bad event " << ev[i];
    if (v.as_object().contains("error")) return ::testing::AssertionFailure() << "error event " << ev[i];
    auto& ch = v.as_object()["choices"];
    if (ch.is_array() && !ch.as_array().empty()) {
      auto& d = ch.as_array()[0].as_object()["delta"];
      if (d.is_object()) {
        if (d.as_object().contains("role")) ++roles;
        if (auto c = d.as_object().if_contains("content"); c && c->is_string()) content += c->as_string();
      }
    }
  }
  if (roles != 1) return ::testing::AssertionFailure() << roles << " role chunks (two streams spliced?)";
  if (content.empty()) return ::testing::AssertionFailure() << "no content";
  return ::testing::AssertionSuccess();
}

uint64_t attempts(const std::string& deployment, const std::string& outcome) {
  return metrics::get_counter("fastpath_routing_attempts_total",
                              "Upstream attempts by deployment and outcome (ok, error, rate_limited, cancelled)",
                              {{"deployment", deployment}, {"outcome", outcome}})
      .value();
}

uint64_t counter(const char* name) {
  // get-or-create returns the registered counter; the help text is ignored for existing ones.
  return metrics::get_counter(name, "").value();
}

class Routing : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    fast_ = new mock_on_port("zero", 0);
    fast2_ = new mock_on_port("zero", 0);
  }
  static void TearDownTestSuite() {
    delete fast_;
    delete fast2_;
  }
  void SetUp() override {
    if (!fast_->ok() || !fast2_->ok()) GTEST_SKIP() << "`fastpath mock` not available (build fastpath first)";
  }
  static mock_on_port* fast_;
  static mock_on_port* fast2_;
};
mock_on_port* Routing::fast_ = nullptr;
mock_on_port* Routing::fast2_ = nullptr;

TEST_F(Routing, TrafficShiftsAwayFromSlowDeployment) {
  std::string y = server_head() + "providers:\n" + provider("quick", fast_->port()) +
                  provider("sluggish", fast2_->port(), "x-mock-ttft-ms: '250'") +
                  "models:\n  - {name: m, deployments: [{provider: quick}, {provider: sluggish}]}\n"
                  "routing:\n  models: [{name: m, deployments: [quick, sluggish]}]\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  std::map<std::string, int> late;
  for (int i = 0; i < 30; ++i) {
    auto r = chat(g->port, chat_body("m", "hello " + std::to_string(i)));
    ASSERT_TRUE(clean_stream(r));
    if (i >= 10) ++late[served_by(r)];
  }
  EXPECT_GE(late["quick"], 17) << "sluggish got " << late["sluggish"];
}

TEST_F(Routing, FailingDeploymentIsEjectedAndReadmitted) {
  manual_clock clk;
  uint16_t port_b = dead_port();  // nothing listens yet: connection refused
  std::string y = server_head() + "providers:\n" + provider("ok-a", fast_->port()) + provider("flaky-b", port_b) +
                  "models:\n  - {name: m, deployments: [{provider: ok-a}, {provider: flaky-b}]}\n"
                  "routing:\n"
                  "  models: [{name: m, deployments: [ok-a, {name: flaky-b, weight: 1000000}]}]\n"
                  "  health: {breaker: {consecutive_failures: 2, open_ms: 1000, probe_successes: 1}}\n"
                  "  retries: {max_attempts: 3, budget_burst: 100, budget_ratio: 1.0}\n";
  auto g = start_gateway(y, &clk);
  ASSERT_TRUE(g);
  uint64_t err0 = attempts("flaky-b", "error");
  // Every request succeeds: a failure before the first byte is retried on ok-a invisibly.
  for (int i = 0; i < 30; ++i) {
    auto r = chat(g->port, chat_body("m", "q" + std::to_string(i)));
    ASSERT_TRUE(clean_stream(r)) << i;
    EXPECT_EQ(served_by(r), "ok-a");
  }
  // Ejected after exactly two consecutive failures; no traffic while open (the clock is frozen).
  EXPECT_EQ(attempts("flaky-b", "error") - err0, 2u);
  EXPECT_EQ(g->eng->health("flaky-b").state, routing::breaker_state::open);

  // The deployment heals; after open_ms the next request is its probe, which closes the breaker.
  mock_on_port healed("zero", port_b);
  ASSERT_TRUE(healed.ok()) << "could not re-bind port " << port_b;
  clk.advance_ms(1000);
  auto r = chat(g->port, chat_body("m", "probe"));
  ASSERT_TRUE(clean_stream(r));
  EXPECT_EQ(served_by(r), "flaky-b");
  EXPECT_EQ(g->eng->health("flaky-b").state, routing::breaker_state::closed);
}

TEST_F(Routing, RetryAndFallbackBeforeFirstByteGiveOneCleanStream) {
  std::string y = server_head() + "providers:\n" + provider("broken", fast_->port(), "x-mock-error-status: '500'") +
                  provider("backup-dep", fast2_->port()) +
                  "models:\n  - {name: primary, provider: broken}\n  - {name: backup, provider: backup-dep}\n"
                  "routing:\n  models:\n    - {name: primary, deployments: [broken], fallbacks: [backup]}\n"
                  "    - {name: backup, deployments: [backup-dep]}\n"
                  "  health: {breaker: {consecutive_failures: 1000, failure_rate: 1.1}}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  uint64_t fb0 = counter("fastpath_routing_fallbacks_total");
  for (int i = 0; i < 3; ++i) {
    auto r = chat(g->port, chat_body("primary", "hi"));
    ASSERT_TRUE(clean_stream(r));
    EXPECT_EQ(served_by(r), "backup-dep");
    EXPECT_NE(r.headers["x-fastpath-route"].find("attempts=2"), std::string::npos) << r.headers["x-fastpath-route"];
  }
  EXPECT_EQ(counter("fastpath_routing_fallbacks_total") - fb0, 3u);
}

TEST_F(Routing, FailureAfterFirstByteEndsWithErrorEvent) {
  std::string y = server_head() + "providers:\n" + provider("dies", fast_->port(), "x-mock-error-after: '3'") +
                  provider("spare", fast2_->port()) +
                  "models:\n  - {name: m, deployments: [{provider: dies}]}\n  - {name: s, provider: spare}\n"
                  "routing:\n  models: [{name: m, deployments: [dies], fallbacks: [s]}, {name: s, deployments: [spare]}]\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  uint64_t ok_spare = attempts("spare", "ok");
  auto r = chat(g->port, chat_body("m", "hi"));
  EXPECT_EQ(r.status, 200);
  auto ev = sse_data(r.body);
  ASSERT_FALSE(ev.empty());
  EXPECT_NE(ev.back(), "[DONE]");
  EXPECT_NE(ev.back().find("\"error\""), std::string::npos) << r.body;
  EXPECT_EQ(attempts("spare", "ok"), ok_spare);  // never retried once bytes reached the client
}

TEST_F(Routing, RetryAfterIsHonoured) {
  manual_clock clk;
  std::string y = server_head() + "providers:\n" + provider("limited", fast_->port(), "x-mock-error-status: '429'") +
                  provider("open", fast2_->port()) +
                  "models:\n  - {name: m, deployments: [{provider: limited}, {provider: open}]}\n"
                  "routing:\n  models: [{name: m, deployments: [{name: limited, weight: 1000000}, open]}]\n";
  auto g = start_gateway(y, &clk);
  ASSERT_TRUE(g);
  uint64_t rl0 = attempts("limited", "rate_limited");
  for (int i = 0; i < 10; ++i) {
    auto r = chat(g->port, chat_body("m", "x"));
    ASSERT_TRUE(clean_stream(r));
    EXPECT_EQ(served_by(r), "open");
  }
  // The heavily weighted deployment was asked once; its Retry-After (1 s, frozen clock) kept it out.
  EXPECT_EQ(attempts("limited", "rate_limited") - rl0, 1u);
  clk.advance_ms(1100);
  (void)chat(g->port, chat_body("m", "x"));
  EXPECT_EQ(attempts("limited", "rate_limited") - rl0, 2u);  // asked again once Retry-After passed
}

TEST_F(Routing, RetryBudgetHolds) {
  std::string y = server_head() + "providers:\n" + provider("bad1", fast_->port(), "x-mock-error-status: '503'") +
                  provider("bad2", fast2_->port(), "x-mock-error-status: '503'") +
                  "models:\n  - {name: m, deployments: [{provider: bad1}, {provider: bad2}]}\n"
                  "routing:\n  models: [{name: m, deployments: [bad1, bad2]}]\n"
                  "  health: {breaker: {consecutive_failures: 1000, failure_rate: 1.1}}\n"
                  "  retries: {max_attempts: 3, budget_ratio: 0.1, budget_burst: 2, budget_min_per_second: 0}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  uint64_t e0 = attempts("bad1", "error") + attempts("bad2", "error");
  const int n = 40;
  for (int i = 0; i < n; ++i) {
    auto r = chat(g->port, chat_body("m", "x"));
    EXPECT_EQ(r.status, 503);
  }
  uint64_t upstream = attempts("bad1", "error") + attempts("bad2", "error") - e0;
  EXPECT_GE(upstream, static_cast<uint64_t>(n));
  EXPECT_LE(upstream, static_cast<uint64_t>(n + 0.1 * n + 2));  // without the budget: 2n
}

TEST_F(Routing, HedgeWinsAndLoserIsCancelled) {
  std::string y = server_head() + "providers:\n" + provider("slowpoke", fast_->port(), "x-mock-ttft-ms: '3000'") +
                  provider("rabbit", fast2_->port()) +
                  "models:\n  - {name: m, deployments: [{provider: slowpoke}, {provider: rabbit}]}\n"
                  "routing:\n  models: [{name: m, deployments: [{name: slowpoke, weight: 1000000}, {name: rabbit, weight: 0.000001}]}]\n"
                  "  hedging: {enabled: true, delay_ms: 50, budget_ratio: 1.0, budget_burst: 5}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  uint64_t c0 = attempts("slowpoke", "cancelled");
  uint64_t h0 = counter("fastpath_routing_hedge_wins_total");
  auto r = chat(g->port, chat_body("m", "x"));
  ASSERT_TRUE(clean_stream(r));
  EXPECT_EQ(served_by(r), "rabbit");
  EXPECT_NE(r.headers["x-fastpath-route"].find("hedged=1"), std::string::npos) << r.headers["x-fastpath-route"];
  EXPECT_EQ(attempts("slowpoke", "cancelled") - c0, 1u);
  EXPECT_EQ(counter("fastpath_routing_hedge_wins_total") - h0, 1u);
}

TEST_F(Routing, HedgeBudgetHolds) {
  std::string y = server_head() + "providers:\n" + provider("h1", fast_->port(), "x-mock-ttft-ms: '40'") +
                  provider("h2", fast2_->port(), "x-mock-ttft-ms: '40'") +
                  "models:\n  - {name: m, deployments: [{provider: h1}, {provider: h2}]}\n"
                  "routing:\n  models: [{name: m, deployments: [h1, h2]}]\n"
                  "  hedging: {enabled: true, delay_ms: 1, min_delay_ms: 1, budget_ratio: 0.1, budget_burst: 1,"
                  " budget_min_per_second: 0}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  uint64_t h0 = counter("fastpath_routing_hedges_total");
  uint64_t d0 = counter("fastpath_routing_hedges_denied_total");
  const int n = 30;
  for (int i = 0; i < n; ++i) ASSERT_TRUE(clean_stream(chat(g->port, chat_body("m", "x"))));
  uint64_t hedges = counter("fastpath_routing_hedges_total") - h0;
  EXPECT_LE(hedges, static_cast<uint64_t>(0.1 * n + 1));
  EXPECT_GE(counter("fastpath_routing_hedges_denied_total") - d0, 1u);  // it wanted more
}

TEST_F(Routing, PrefixAffinityKeepsEqualPrefixesTogetherWithinTheLoadBound) {
  std::string y = server_head() + "providers:\n" + provider("r1", fast_->port()) + provider("r2", fast_->port()) +
                  provider("r3", fast2_->port()) +
                  "models:\n  - {name: m, deployments: [{provider: r1}, {provider: r2}, {provider: r3}]}\n"
                  "routing:\n  models: [{name: m, balance: prefix_affinity, deployments: [r1, r2, r3]}]\n"
                  "  affinity: {load_factor: 1.25, prefix_bytes: 1024, min_bytes: 256}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  std::string doc(1500, 'd');
  std::string first;
  for (int i = 0; i < 8; ++i) {
    auto r = chat(g->port, chat_body("m", "question " + std::to_string(i), "You answer from this document: " + doc));
    ASSERT_TRUE(clean_stream(r));
    if (i == 0) first = served_by(r);
    EXPECT_EQ(served_by(r), first);
  }
  std::map<std::string, int> spread;
  for (int i = 0; i < 24; ++i) {
    auto r = chat(g->port, chat_body("m", "q", "System prompt number " + std::to_string(i) + " " + doc));
    ++spread[served_by(r)];
  }
  EXPECT_GE(spread.size(), 2u);

  // A burst of 9 concurrent requests with one prefix (each holds its replica for a while): the
  // bounded-load rule spills the overflow, so no replica takes more than ceil(1.25 * 9 / 3) = 4.
  std::vector<std::thread> ts;
  std::vector<std::string> who(9);
  for (int i = 0; i < 9; ++i)
    ts.emplace_back([&, i] {
      auto r = chat(g->port, chat_body("m", "burst", "Shared prefix " + doc, R"("mock":{"ttft_ms":4000})"));
      who[static_cast<size_t>(i)] = served_by(r);
    });
  for (auto& t : ts) t.join();
  std::map<std::string, int> burst;
  for (const auto& w : who) ++burst[w];
  for (const auto& [k, v] : burst) EXPECT_LE(v, 4) << k;
}

TEST_F(Routing, AutoAliasRoutesByComplexity) {
  std::string y = server_head() + "providers:\n" + provider("p-small", fast_->port()) + provider("p-mid", fast_->port()) +
                  provider("p-strong", fast2_->port()) +
                  "models:\n  - {name: small-model, provider: p-small}\n  - {name: mid-model, provider: p-mid}\n"
                  "  - {name: strong-model, provider: p-strong}\n"
                  "routing:\n  aliases:\n    - name: auto\n      tiers:\n"
                  "        - {name: small, model: small-model, below: 0.3}\n"
                  "        - {name: mid, model: mid-model, up_to: 0.7}\n"
                  "        - {name: strong, model: strong-model}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  auto r = chat(g->port, chat_body("auto", "What is the capital of France?"));
  ASSERT_TRUE(clean_stream(r));
  auto route = r.headers["x-fastpath-route"];
  EXPECT_EQ(route.rfind("model=small-model score=0.", 0), 0u) << route;
  EXPECT_NE(route.find("reasons="), std::string::npos) << route;
  r = chat(g->port, chat_body("auto", "Prove that there are infinitely many prime numbers of the form 4k+3."));
  ASSERT_TRUE(clean_stream(r));
  EXPECT_EQ(r.headers["x-fastpath-route"].rfind("model=strong-model", 0), 0u) << r.headers["x-fastpath-route"];
  r = chat(g->port, chat_body("auto", "Explain the difference between TCP and UDP and when to use each."));
  EXPECT_EQ(r.headers["x-fastpath-route"].rfind("model=mid-model", 0), 0u) << r.headers["x-fastpath-route"];
}

TEST_F(Routing, LocalRateLimitAnswers429WithRetryAfter) {
  std::string y = server_head() + "auth: {api_keys: [key-one, key-two]}\nproviders:\n" + provider("p", fast_->port()) +
                  "models:\n  - {name: m, provider: p}\n"
                  "routing:\n  rate_limits: {default: {requests_per_minute: 3}}\n";
  auto g = start_gateway(y);
  ASSERT_TRUE(g);
  std::vector<std::pair<std::string, std::string>> k1{{"Authorization", "Bearer key-one"}};
  std::vector<std::pair<std::string, std::string>> k2{{"Authorization", "Bearer key-two"}};
  int ok = 0, limited = 0;
  for (int i = 0; i < 6; ++i) {
    auto r = chat(g->port, chat_body("m", "x"), k1);
    if (r.status == 200) ++ok;
    if (r.status == 429) {
      ++limited;
      EXPECT_FALSE(r.headers["retry-after"].empty()) << "no Retry-After";
      EXPECT_EQ(r.body.find("key-one"), std::string::npos);  // the key is never echoed
    }
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(limited, 3);
  EXPECT_EQ(chat(g->port, chat_body("m", "x"), k2).status, 200);  // per key
}

}  // namespace
}  // namespace fp::test
