// The cache inside the real gateway, over real sockets (127.0.0.1, port 0), with `fastpath mock`
// as the upstream; upstream calls are counted by the mock's /mock/stats. Time-based behaviour uses
// an injected clock, never sleeps.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "cache/gateway_hook.hpp"
#include "gateway/gateway.hpp"
#include "fakes/redis_server.hpp"
#include "integration/harness.hpp"

using namespace fp::test;
namespace fc = fp::cache;
namespace gw = fp::gateway;

namespace {

struct fake_clock final : fp::clock {
  std::atomic<int64_t> ms{1'700'000'000'000};
  int64_t now_ns() const noexcept override { return fp::now_ns(); }
  int64_t wall_ms() const noexcept override { return ms.load(); }
};

std::unique_ptr<mock_process> g_mock;

struct gateway_instance {
  std::unique_ptr<gw::gateway> g;
  uint16_t port = 0;
  ~gateway_instance() { stop(); }
  void stop() {
    if (g) {
      g->stop();
      g->wait();
      g.reset();
    }
  }
};

std::unique_ptr<gateway_instance> start_gateway(const std::string& cache_yaml, const fp::clock& clk) {
  std::string yaml = fmt::format(R"(
server: {{host: 127.0.0.1, port: 0, threads: 2, shutdown_grace_ms: 2000}}
auth: {{api_keys: [key-a, key-b]}}
log: {{access_log: false, level: error}}
providers:
  - {{name: oai, kind: openai, base_url: "http://127.0.0.1:{}/v1", max_connections: 1000}}
models:
  - {{name: gpt-4o, provider: oai}}
  - {{name: other, provider: oai, upstream_model: gpt-4o-mini}}
cache: {}
)",
                                 g_mock->port(), cache_yaml);
  auto cfg = gw::config_from_yaml(yaml);
  EXPECT_TRUE(cfg) << (cfg ? "" : cfg.error().message);
  if (!cfg) return nullptr;
  auto g = gw::gateway::create(std::move(*cfg));
  EXPECT_TRUE(g);
  if (!g) return nullptr;
  auto inst = std::make_unique<gateway_instance>();
  inst->g = std::move(*g);
  gw::gateway* raw = inst->g.get();
  auto hook = fc::make_gateway_hook(raw->cfg(), [raw](std::string_view m) { return raw->deployments_of(m); }, clk);
  if (hook) raw->set_cache(hook);
  auto port = raw->start();
  EXPECT_TRUE(port);
  if (!port) return nullptr;
  inst->port = *port;
  return inst;
}

int64_t mock_requests() {
  auto r = call(g_mock->port(), "GET", "/mock/stats");
  auto v = fp::test::parse_json(r.body);
  return v.is_object() ? v.at("requests").to_number<int64_t>() : -1;
}

using headers = std::vector<std::pair<std::string, std::string>>;

reply chat(uint16_t port, std::string_view body, headers h = {}) {
  bool has_auth = false;
  for (auto& [k, v] : h) has_auth |= k == "Authorization";
  if (!has_auth) h.emplace_back("Authorization", "Bearer key-a");
  return call(port, "POST", "/v1/chat/completions", body, h);
}

std::string body(std::string_view user, bool stream, std::string_view extra = R"("temperature":0)") {
  std::string b = fmt::format(R"({{"model":"gpt-4o","messages":[{{"role":"user","content":"{}"}}],"stream":{})", user,
                              stream ? "true" : "false");
  if (!extra.empty()) b += "," + std::string(extra);
  return b + "}";
}

std::string content_of(const reply& r) {
  if (r.headers.count("content-type") && r.headers.at("content-type").rfind("text/event-stream", 0) == 0) {
    std::string text;
    for (auto& ev : sse_data(r.body)) {
      auto v = fp::test::parse_json(ev);
      if (!v.is_object() || !v.as_object().contains("choices")) continue;
      auto& ch = v.at("choices").as_array();
      if (ch.empty()) continue;
      if (auto* d = ch[0].as_object().if_contains("delta"))
        if (auto* c = d->as_object().if_contains("content"); c && c->is_string()) text += c->as_string();
    }
    return text;
  }
  auto v = fp::test::parse_json(r.body);
  if (!v.is_object()) return {};
  auto& c = v.at("choices").as_array()[0].at("message").at("content");
  return c.is_string() ? std::string(c.as_string()) : std::string();
}

std::string cache_hdr(const reply& r) {
  auto it = r.headers.find("x-fastpath-cache");
  return it == r.headers.end() ? "" : it->second;
}

std::string unique(std::string_view what) {
  static std::atomic<int> n{0};
  return fmt::format("{} {} {}", what, ::getpid(), n++);
}

class CacheGateway : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    raise_fd_limit();
    g_mock = std::make_unique<mock_process>("zero", "openai");
  }
  static void TearDownTestSuite() { g_mock.reset(); }
  void SetUp() override {
    if (!g_mock || !g_mock->ok()) GTEST_SKIP() << "`fastpath mock` not available (build the fastpath binary first)";
  }
  fake_clock clk;
};

// A redis-server on a unix socket owned by one test (it gets killed and restarted).
using fp::test::private_redis;

}  // namespace

TEST_F(CacheGateway, EachParameterChangesTheKeyAndRepeatsHit) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  std::string q = unique("params");
  int64_t before = mock_requests();
  auto a = chat(g->port, body(q, false));
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(cache_hdr(a), "miss");
  auto b = chat(g->port, body(q, false));
  EXPECT_EQ(cache_hdr(b), "hit");
  EXPECT_EQ(content_of(a), content_of(b));
  EXPECT_EQ(mock_requests() - before, 1);
  const char* variants[] = {
      R"("temperature":0,"top_p":0.5)", R"("temperature":0,"seed":7)", R"("temperature":0,"max_tokens":5)",
      R"("temperature":0,"stop":["zz"])", R"("temperature":0,"presence_penalty":0.5)",
      R"("temperature":0,"frequency_penalty":0.5)", R"("temperature":0,"logit_bias":{"42":3})",
      R"("temperature":0,"response_format":{"type":"json_object"})",
      R"("temperature":0,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}])",
      R"("temperature":0,"tool_choice":"none")", R"("temperature":0,"logprobs":true)",
      R"("temperature":0,"logprobs":true,"top_logprobs":2)", R"("temperature":0,"n":2)"};
  for (const char* v : variants) {
    auto r = chat(g->port, body(q, false, v));
    ASSERT_EQ(r.status, 200) << v << " " << r.body;
    EXPECT_EQ(cache_hdr(r), "miss") << v;
  }
  // the system prompt, the model and the message name shape the answer too
  auto sys = chat(g->port, fmt::format(R"({{"model":"gpt-4o","temperature":0,"messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"{}"}}]}})", q));
  EXPECT_EQ(cache_hdr(sys), "miss");
  auto other = chat(g->port, fmt::format(R"({{"model":"other","temperature":0,"messages":[{{"role":"user","content":"{}"}}]}})", q));
  EXPECT_EQ(cache_hdr(other), "miss");
  auto named = chat(g->port, fmt::format(R"({{"model":"gpt-4o","temperature":0,"messages":[{{"role":"user","name":"ann","content":"{}"}}]}})", q));
  EXPECT_EQ(cache_hdr(named), "miss");
  // ... but user / metadata-like fields and JSON layout do not
  auto user = chat(g->port, body(q, false, R"("temperature":0.0,"user":"someone")"));
  EXPECT_EQ(cache_hdr(user), "hit");
  auto ws = chat(g->port, fmt::format(R"({{ "temperature" : 0 , "stream":false, "messages" : [ {{ "content" : "{}", "role" : "user" }} ], "model" : "gpt-4o" }})", q));
  EXPECT_EQ(cache_hdr(ws), "hit");
  // not repeatable (no temperature 0, no seed): bypass
  auto hot = chat(g->port, body(q, false, R"("temperature":0.7)"));
  EXPECT_EQ(cache_hdr(hot), "bypass");
}

TEST_F(CacheGateway, TenantsAreIsolated) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  std::string q = unique("tenant");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Authorization", "Bearer key-a"}})), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Authorization", "Bearer key-a"}})), "hit");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Authorization", "Bearer key-b"}})), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Authorization", "Bearer key-b"}})), "hit");
  auto t = start_gateway("{tenant_header: x-tenant-id}", clk);
  ASSERT_TRUE(t);
  EXPECT_EQ(cache_hdr(chat(t->port, body(q, false), {{"x-tenant-id", "acme"}})), "miss");
  EXPECT_EQ(cache_hdr(chat(t->port, body(q, false), {{"x-tenant-id", "acme"}})), "hit");
  EXPECT_EQ(cache_hdr(chat(t->port, body(q, false), {{"x-tenant-id", "globex"}})), "miss");
}

TEST_F(CacheGateway, TtlMaxAgeNoStoreNoCache) {
  auto g = start_gateway("{default_ttl_s: 60}", clk);
  ASSERT_TRUE(g);
  std::string q = unique("ttl");
  headers ttl10{{"x-fastpath-cache-ttl", "10"}};
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), ttl10)), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false))), "hit");
  clk.ms += 11'000;
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false))), "miss");  // expired; refilled (60 s)
  clk.ms += 5'000;
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Cache-Control", "max-age=3"}})), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Cache-Control", "max-age=3"}})), "hit");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false), {{"Cache-Control", "no-cache"}})), "miss");
  std::string q2 = unique("nostore");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q2, false), {{"Cache-Control", "no-store"}})), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q2, false))), "miss");
  clk.ms += 61'000;
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false))), "miss");
}

TEST_F(CacheGateway, FailedOrIncompleteStreamsAreNeverStored) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  for (const char* fault : {R"("mock":{"error_after":2})", R"("mock":{"disconnect_after":2})",
                            R"("mock":{"error_status":500})"}) {
    std::string q = unique("fail");
    std::string extra = std::string(R"("temperature":0,)") + fault;
    int64_t before = mock_requests();
    auto a = chat(g->port, body(q, true, extra));
    auto b = chat(g->port, body(q, true, extra));
    EXPECT_NE(cache_hdr(b), "hit") << fault;
    EXPECT_EQ(mock_requests() - before, 2) << fault;
    (void)a;
  }
}

TEST_F(CacheGateway, StreamedHitReplaysTheSameChunksAndServesBothModes) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  std::string q = unique("stream chunks are kept with their boundaries");
  auto a = chat(g->port, body(q, true));
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(cache_hdr(a), "miss");
  auto b = chat(g->port, body(q, true));
  EXPECT_EQ(cache_hdr(b), "hit");
  auto ea = sse_data(a.body), eb = sse_data(b.body);
  ASSERT_GE(ea.size(), 3u);
  EXPECT_EQ(ea, eb);
  EXPECT_EQ(eb.back(), "[DONE]");
  // the non-streamed form of the same request is served from the streamed entry
  auto c = chat(g->port, body(q, false));
  EXPECT_EQ(cache_hdr(c), "hit");
  EXPECT_EQ(content_of(c), content_of(a));
  auto cv = fp::test::parse_json(c.body);
  ASSERT_TRUE(cv.is_object()) << c.body;
  EXPECT_EQ(cv.at("object").as_string(), "chat.completion");
  // and the other way round
  std::string q2 = unique("filled without streaming");
  auto d = chat(g->port, body(q2, false));
  EXPECT_EQ(cache_hdr(d), "miss");
  auto e = chat(g->port, body(q2, true));
  EXPECT_EQ(cache_hdr(e), "hit");
  EXPECT_EQ(content_of(e), content_of(d));
  EXPECT_EQ(sse_data(e.body).back(), "[DONE]");
}

namespace {
void hundred_identical(uint16_t port, const std::string& b, std::vector<reply>& out) {
  out.resize(100);
  std::vector<std::thread> ts;
  for (int i = 0; i < 100; ++i) ts.emplace_back([&, i] { out[i] = chat(port, b); });
  for (auto& t : ts) t.join();
}
}  // namespace

TEST_F(CacheGateway, HundredIdenticalConcurrentRequestsMakeOneUpstreamCall) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  for (bool stream : {true, false}) {
    std::string q = unique(stream ? "concurrent stream" : "concurrent complete");
    int64_t before = mock_requests();
    std::vector<reply> rs;
    hundred_identical(g->port, body(q, stream, R"("temperature":0,"mock":{"ttft_ms":300})"), rs);
    EXPECT_EQ(mock_requests() - before, 1) << (stream ? "stream" : "complete");
    int misses = 0;
    std::string want = content_of(rs[0]);
    EXPECT_FALSE(want.empty());
    for (auto& r : rs) {
      ASSERT_EQ(r.status, 200);
      misses += cache_hdr(r) == "miss";
      EXPECT_TRUE(cache_hdr(r) == "miss" || cache_hdr(r) == "coalesced" || cache_hdr(r) == "hit") << cache_hdr(r);
      EXPECT_EQ(content_of(r), want);
      if (stream) EXPECT_EQ(sse_data(r.body).back(), "[DONE]");
    }
    EXPECT_EQ(misses, 1);
  }
}

TEST_F(CacheGateway, LeaderDisconnectStillAnswersTheFollower) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  std::string b = body(unique("leader leaves"), true, R"("temperature":0,"mock":{"ttft_ms":400})");
  int64_t before = mock_requests();
  int leader = dial(g->port);
  ASSERT_GE(leader, 0);
  send_all(leader, make_request("POST", "/v1/chat/completions", b, {{"Authorization", "Bearer key-a"}}));
  // The follower joins once the mock has the leader's call.
  for (int i = 0; i < 2000 && mock_requests() == before; ++i) std::this_thread::yield();
  // The coalesced counter (process-wide: other tests in this process may have moved it).
  auto coalesced = [&] {
    auto m = call(g->port, "GET", "/metrics", {}, {{"Authorization", "Bearer key-a"}});
    auto p = m.body.find("\nfastpath_cache_coalesced_total ");
    return p == std::string::npos ? -1L : std::atol(m.body.c_str() + p + 32);
  };
  long c0 = coalesced();
  reply follower;
  std::thread f([&] { follower = chat(g->port, b); });
  // Wait until the follower is registered, then drop the leader.
  for (int i = 0; i < 5000 && coalesced() <= c0; ++i) {
  }
  ::close(leader);
  f.join();
  EXPECT_EQ(follower.status, 200);
  EXPECT_EQ(cache_hdr(follower), "coalesced");
  ASSERT_FALSE(sse_data(follower.body).empty());
  EXPECT_EQ(sse_data(follower.body).back(), "[DONE]");
  // the upstream call belongs to the flight: the leader leaving did not cancel it
  EXPECT_EQ(mock_requests() - before, 1);
}

TEST_F(CacheGateway, DiskStoreSurvivesRestart) {
  std::string dir = (std::filesystem::temp_directory_path() / ("fp-cache-disk-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::string q = unique("persisted");
  std::string cfg = fmt::format("{{disk_path: \"{}\", disk_max_bytes: 67108864}}", dir);
  {
    auto g = start_gateway(cfg, clk);
    ASSERT_TRUE(g);
    EXPECT_EQ(cache_hdr(chat(g->port, body(q, true))), "miss");
  }  // stopped: queued disk writes are committed when the cache closes
  int64_t before = mock_requests();
  auto g = start_gateway(cfg, clk);
  ASSERT_TRUE(g);
  auto r = chat(g->port, body(q, true));
  EXPECT_EQ(cache_hdr(r), "hit");
  EXPECT_EQ(sse_data(r.body).back(), "[DONE]");
  EXPECT_EQ(mock_requests() - before, 0);
  g->stop();
  std::filesystem::remove_all(dir);
}

TEST_F(CacheGateway, TwoGatewaysShareEntriesThroughRedis) {
  std::ifstream in(std::string(FASTPATH_REDIS_FIXTURE_DIR) + "/url");
  std::string url;
  std::getline(in, url);
  if (url.empty()) GTEST_SKIP() << "no redis fixture (run through ctest)";
  std::string cfg = fmt::format("{{redis_url: \"{}\", redis_prefix: \"fpc-test-{}:\"}}", url, ::getpid());
  auto a = start_gateway(cfg, clk);
  auto b = start_gateway(cfg, clk);
  ASSERT_TRUE(a && b);
  std::string q = unique("shared");
  int64_t before = mock_requests();
  EXPECT_EQ(cache_hdr(chat(a->port, body(q, true))), "miss");
  auto r = chat(b->port, body(q, true));
  EXPECT_EQ(cache_hdr(r), "hit");
  EXPECT_EQ(sse_data(r.body).back(), "[DONE]");
  auto c = chat(b->port, body(q, false));
  EXPECT_EQ(cache_hdr(c), "hit");
  EXPECT_EQ(mock_requests() - before, 1);
}

TEST_F(CacheGateway, RedisKilledMidRunLosesNoRequestAndRecovers) {
  private_redis pr("kill");
  if (!pr.start()) GTEST_SKIP() << "cannot start redis-server";
  // Redis is the only layer here (no memory layer), so every hit below comes from Redis.
  std::string cfg = fmt::format("{{memory_bytes: 0, redis_url: \"unix://{}\", redis_backoff_ms: 0}}", pr.sock);
  auto g = start_gateway(cfg, clk);
  ASSERT_TRUE(g);
  std::string q = unique("redis dies");
  bool stored = false;
  for (int i = 0; i < 200 && !stored; ++i) {  // bounded: the child may still be binding its socket
    auto r = chat(g->port, body(q, false));
    ASSERT_EQ(r.status, 200);
    stored = cache_hdr(r) == "hit";
  }
  ASSERT_TRUE(stored);
  pr.kill9();
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 20; ++i)
    ts.emplace_back([&, i] {
      auto r = chat(g->port, body(i % 2 ? q : unique("while redis is down"), i % 3 == 0));
      if (r.status == 200 && (r.complete || r.chunked)) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 20);
  auto m = call(g->port, "GET", "/metrics", {}, {{"Authorization", "Bearer key-a"}});
  EXPECT_NE(m.body.find("fastpath_cache_errors_total{layer=\"redis\"}"), std::string::npos);
  ASSERT_TRUE(pr.start());
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) {  // bounded: the first calls may still see the old socket
    auto r = chat(g->port, body(q, false));
    ASSERT_EQ(r.status, 200);
    back = cache_hdr(r) == "hit";
  }
  EXPECT_TRUE(back);
}

TEST_F(CacheGateway, SemanticHitsParaphrasesNeverNearMisses) {
  auto g = start_gateway("{semantic_models: [gpt-4o]}", clk);
  ASSERT_TRUE(g);
  std::string tag = std::to_string(::getpid());
  auto q = [&](std::string s) { return body(s + " (" + tag + ")", false); };
  EXPECT_EQ(cache_hdr(chat(g->port, q("How do I turn off the alarm on my iPhone?"))), "miss");
  auto p = chat(g->port, q("how can i disable the alarm on my iphone"));
  EXPECT_EQ(cache_hdr(p), "hit");
  EXPECT_TRUE(p.headers.count("x-fastpath-cache-similarity"));
  EXPECT_EQ(cache_hdr(chat(g->port, q("How do I turn on the alarm on my iPhone?"))), "miss");
  EXPECT_EQ(cache_hdr(chat(g->port, q("How do I turn off the alarm on my iPad?"))), "miss");
  // per request: off
  EXPECT_EQ(cache_hdr(chat(g->port, q("how can i turn off the alarm on my iphone"), {{"x-fastpath-semantic-cache", "off"}})),
            "miss");
}

// ---- two real `fastpath serve` processes ---------------------------------------------------------

namespace {

std::string fixture_redis_url() {
  std::ifstream in(std::string(FASTPATH_REDIS_FIXTURE_DIR) + "/url");
  std::string url;
  std::getline(in, url);
  return url;
}

// A config file for `fastpath serve` in front of the suite's mock, with this `cache:` section.
struct serve_config {
  std::string path;
  explicit serve_config(const std::string& cache_yaml) {
    path = (std::filesystem::temp_directory_path() / fmt::format("fp-cache-serve-{}-{}.yaml", ::getpid(), counter()++)).string();
    std::ofstream f(path);
    f << fmt::format(R"(server: {{host: 127.0.0.1, port: 0, threads: 2}}
log: {{access_log: false, level: info}}
auth: {{api_keys: [key-a]}}
providers:
  - {{name: oai, kind: openai, base_url: "http://127.0.0.1:{}/v1", max_connections: 1000}}
models:
  - {{name: gpt-4o, provider: oai}}
cache: {}
)",
                     g_mock->port(), cache_yaml);
  }
  ~serve_config() { std::filesystem::remove(path); }
  static std::atomic<int>& counter() {
    static std::atomic<int> n{0};
    return n;
  }
};

std::unique_ptr<child_process> serve(const serve_config& c) {
  auto p = std::make_unique<child_process>(fastpath_binary(), std::vector<std::string>{"serve", "--config", c.path},
                                           child_process::stream::err);
  p->wait_for_port();
  return p;
}

}  // namespace

TEST_F(CacheGateway, TwoServeProcessesShareEntriesThroughRedis) {
  std::string url = fixture_redis_url();
  if (url.empty()) GTEST_SKIP() << "no redis fixture (run through ctest)";
  serve_config cfg(fmt::format("{{redis_url: \"{}\", redis_prefix: \"fpc-proc-{}:\"}}", url, ::getpid()));
  auto a = serve(cfg);
  auto b = serve(cfg);
  ASSERT_NE(a->port(), 0);
  ASSERT_NE(b->port(), 0);

  // Not streamed: a miss through A fills Redis; B (empty memory) answers from Redis.
  std::string q = unique("two processes");
  int64_t before = mock_requests();
  auto ra = chat(a->port(), body(q, false));
  ASSERT_EQ(ra.status, 200) << ra.body;
  EXPECT_EQ(cache_hdr(ra), "miss");
  EXPECT_EQ(mock_requests(), before + 1);
  auto rb = chat(b->port(), body(q, false));
  ASSERT_EQ(rb.status, 200) << rb.body;
  EXPECT_EQ(cache_hdr(rb), "hit");
  EXPECT_EQ(content_of(rb), content_of(ra));
  EXPECT_EQ(mock_requests(), before + 1);

  // Streamed: the same chunk sequence from the other process, and the other mode too.
  std::string qs = unique("two processes, streamed");
  before = mock_requests();
  auto sa = chat(a->port(), body(qs, true));
  ASSERT_EQ(sa.status, 200);
  EXPECT_EQ(cache_hdr(sa), "miss");
  auto sb = chat(b->port(), body(qs, true));
  EXPECT_EQ(cache_hdr(sb), "hit");
  EXPECT_EQ(sse_data(sb.body), sse_data(sa.body));
  EXPECT_EQ(sse_data(sb.body).back(), "[DONE]");
  auto cb = chat(b->port(), body(qs, false));
  EXPECT_EQ(cache_hdr(cb), "hit");
  EXPECT_EQ(content_of(cb), content_of(sa));
  EXPECT_EQ(mock_requests(), before + 1);
}

TEST_F(CacheGateway, TwoServeProcessesLoseNoRequestWhenRedisDiesAndShareAgainWhenItReturns) {
  private_redis pr("proc");
  if (!pr.start()) GTEST_SKIP() << "cannot start redis-server";
  // Redis is the only layer (no memory layer), so every hit below comes from Redis.
  serve_config cfg(fmt::format("{{memory_bytes: 0, redis_url: \"unix://{}\", redis_backoff_ms: 0, redis_timeout_ms: 500}}", pr.sock));
  auto a = serve(cfg);
  auto b = serve(cfg);
  ASSERT_NE(a->port(), 0);
  ASSERT_NE(b->port(), 0);
  auto shared_once = [&](const std::string& q) {  // filled through A, then a hit through B?
    auto ra = chat(a->port(), body(q, false));
    EXPECT_EQ(ra.status, 200);
    auto rb = chat(b->port(), body(q, false));
    EXPECT_EQ(rb.status, 200);
    return cache_hdr(rb) == "hit";
  };
  bool shared = false;
  for (int i = 0; i < 200 && !shared; ++i) shared = shared_once(unique("before redis dies"));  // bounded: first connects
  ASSERT_TRUE(shared);

  pr.kill9();
  // Every request still succeeds, from upstream (the cache has no layer left).
  int64_t before = mock_requests();
  for (int i = 0; i < 20; ++i) {
    uint16_t port = i % 2 ? b->port() : a->port();
    bool stream = i % 3 == 0;
    auto r = chat(port, body(unique("while redis is down"), stream));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.complete) << i;
    if (stream) EXPECT_EQ(sse_data(r.body).back(), "[DONE]");
    EXPECT_EQ(cache_hdr(r), "miss");
  }
  EXPECT_EQ(mock_requests(), before + 20);

  ASSERT_TRUE(pr.start());
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) back = shared_once(unique("after redis returns"));  // bounded reconnect
  EXPECT_TRUE(back);
}

// ---- single-flight: the upstream call belongs to the flight -------------------------------------

namespace {

struct mock_counters {
  int64_t requests = -1, cancelled = -1, completed = -1;
};
// /mock/stats, long-polling (up to 10 s) until the named counters reach the given values.
mock_counters mock_stats(std::string_view wait = {}) {
  std::string path = "/mock/stats";
  if (!wait.empty()) path += "?" + std::string(wait);
  auto v = fp::test::parse_json(call(g_mock->port(), "GET", path).body);
  mock_counters c;
  if (!v.is_object()) return c;
  c.requests = v.at("requests").to_number<int64_t>();
  c.cancelled = v.at("cancelled").to_number<int64_t>();
  c.completed = v.at("completed").to_number<int64_t>();
  return c;
}

long coalesced_total(uint16_t port) {
  auto m = call(port, "GET", "/metrics", {}, {{"Authorization", "Bearer key-a"}});
  auto p = m.body.find("\nfastpath_cache_coalesced_total ");
  return p == std::string::npos ? -1L : std::atol(m.body.c_str() + p + 32);
}

// Sends a streamed request on a raw socket (read it with read_until_first_event).
int start_stream(uint16_t port, const std::string& b) {
  int fd = dial(port);
  if (fd < 0) return -1;
  send_all(fd, make_request("POST", "/v1/chat/completions", b, {{"Authorization", "Bearer key-a"}}));
  return fd;
}
// Reads the response head and at least the first SSE event; "" if the connection ended first.
std::string read_until_first_event(int fd) {
  std::string got;
  char buf[4096];
  while (got.find("data: ") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return {};
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

}  // namespace

TEST_F(CacheGateway, StreamingLeaderLeavesMidStreamFollowersGetTheWholeStreamFromOneUpstreamCall) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  // 60 chunks 25 ms apart: the stream is still running while everyone joins and the leader leaves.
  std::string b = body(unique("the flight owns the call"), true, R"("temperature":0,"mock":{"itl_ms":25,"output_tokens":60})");
  mock_counters m0 = mock_stats();
  int leader = start_stream(g->port, b);
  ASSERT_GE(leader, 0);
  mock_stats(fmt::format("wait_requests={}", m0.requests + 1));  // the shared call has started
  long c0 = coalesced_total(g->port);
  constexpr int followers = 3;
  std::vector<reply> got(followers);
  std::vector<std::thread> ts;
  for (int i = 0; i < followers; ++i) ts.emplace_back([&, i] { got[i] = chat(g->port, b); });
  for (int i = 0; i < 5000 && coalesced_total(g->port) < c0 + followers; ++i) {
  }
  ASSERT_EQ(coalesced_total(g->port), c0 + followers);
  ASSERT_FALSE(read_until_first_event(leader).empty());  // the leader has part of the stream ...
  ::close(leader);                              // ... and leaves in the middle of it
  for (auto& t : ts) t.join();

  auto replay = chat(g->port, b);  // the stored answer, for comparison
  EXPECT_EQ(cache_hdr(replay), "hit");
  auto want = sse_data(replay.body);
  ASSERT_GE(want.size(), 60u);
  for (auto& r : got) {
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(cache_hdr(r), "coalesced");
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(sse_data(r.body), want);
  }
  mock_counters m1 = mock_stats();
  EXPECT_EQ(m1.requests, m0.requests + 1);  // one upstream call for the leader and 3 followers
  EXPECT_EQ(m1.cancelled, m0.cancelled);    // ... that was never cancelled
}

TEST_F(CacheGateway, SharedCallIsCancelledWhenEveryWaiterLeaves) {
  auto g = start_gateway("{}", clk);
  ASSERT_TRUE(g);
  // 400 chunks 25 ms apart (10 s): only a cancellation ends it early.
  std::string b = body(unique("nobody waits"), true, R"("temperature":0,"mock":{"itl_ms":25,"output_tokens":400})");
  mock_counters m0 = mock_stats();
  std::vector<int> fds;
  fds.push_back(start_stream(g->port, b));
  mock_stats(fmt::format("wait_requests={}", m0.requests + 1));
  long c0 = coalesced_total(g->port);
  for (int i = 0; i < 2; ++i) fds.push_back(start_stream(g->port, b));
  for (int i = 0; i < 5000 && coalesced_total(g->port) < c0 + 2; ++i) {
  }
  ASSERT_EQ(coalesced_total(g->port), c0 + 2);
  for (int fd : fds) {
    ASSERT_GE(fd, 0);
    ASSERT_FALSE(read_until_first_event(fd).empty());
  }
  // The first two leave: the call goes on for the third.
  ::close(fds[0]);
  ::close(fds[1]);
  mock_counters mid = mock_stats();
  EXPECT_EQ(mid.cancelled, m0.cancelled);
  ::close(fds[2]);  // the last waiter leaves: the shared upstream call is cancelled
  mock_counters m1 = mock_stats(fmt::format("wait_cancelled={}", m0.cancelled + 1));
  EXPECT_EQ(m1.cancelled, m0.cancelled + 1);
  EXPECT_EQ(m1.completed, m0.completed);
  EXPECT_EQ(m1.requests, m0.requests + 1);
  // Nothing was stored, and the abandoned flight is gone: the same request is a new miss.
  int again = start_stream(g->port, b);
  std::string head = read_until_first_event(again);
  for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_NE(head.find("x-fastpath-cache: miss"), std::string::npos) << head;
  ::close(again);
}

// ---- model embedders in the gateway --------------------------------------------------------------

namespace {
// A paraphrase that every embedder places close (same words), and a near-miss the guard refuses.
void semantic_round(uint16_t port, const std::string& tag) {
  auto q = [&](std::string s) { return body(s + " (" + tag + ")", false); };
  EXPECT_EQ(cache_hdr(chat(port, q("How do I turn off the alarm on my iPhone?"))), "miss");
  auto p = chat(port, q("how do I turn off the alarm on my iPhone"));
  EXPECT_EQ(cache_hdr(p), "hit");
  EXPECT_TRUE(p.headers.count("x-fastpath-cache-similarity"));
  EXPECT_EQ(cache_hdr(chat(port, q("How do I turn on the alarm on my iPhone?"))), "miss");
}
}  // namespace

TEST_F(CacheGateway, SemanticCacheWithTheUpstreamEmbeddingsEmbedder) {
  auto g = start_gateway(fmt::format("{{semantic_models: [gpt-4o], semantic_embedder: upstream, "
                                     "semantic_embeddings_url: \"http://127.0.0.1:{}/v1\", semantic_embeddings_dim: 128}}",
                                     g_mock->port()),
                         clk);
  ASSERT_TRUE(g);
  semantic_round(g->port, "upstream " + std::to_string(::getpid()));
}

TEST_F(CacheGateway, SemanticCacheWithTheLocalEngineEmbedder) {
  std::string model = std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "shared model absent: " << model;
  // The wiring, not the calibration: stories260K places casing variants below its default 0.95.
  auto g = start_gateway(fmt::format("{{semantic_models: [gpt-4o], semantic_embedder: local, semantic_local_model: \"{}\", "
                                     "semantic_threshold: 0.5}}",
                                     model),
                         clk);
  ASSERT_TRUE(g);
  semantic_round(g->port, "local " + std::to_string(::getpid()));
}

TEST_F(CacheGateway, SemanticLookupGoesOnWhenTheEmbedderIsDown) {
  auto g = start_gateway(fmt::format("{{semantic_models: [gpt-4o], semantic_embedder: upstream, "
                                     "semantic_embeddings_url: \"http://127.0.0.1:{}/v1\", semantic_embeddings_timeout_ms: 500}}",
                                     dead_port()),
                         clk);
  ASSERT_TRUE(g);
  std::string q = unique("embedder down");
  EXPECT_EQ(cache_hdr(chat(g->port, body(q, false))), "miss");
  auto r = chat(g->port, body(q, false));  // the exact layer still answers
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(cache_hdr(r), "hit");
}
