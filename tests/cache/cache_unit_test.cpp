// Unit tests of fp_cache that need no gateway: keys, policy, entries, memory LRU, LMDB, semantic
// guard, single-flight through the cache facade with a fake upstream.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "api/api.hpp"
#include "cache/cache.hpp"
#include "cache/semantic.hpp"
#include "cache/store.hpp"

#include <yaml-cpp/yaml.h>
#include <set>

namespace fc = fp::cache;
namespace asio = boost::asio;
using fp::api::request;

namespace {

struct fake_clock final : fp::clock {
  int64_t ns = 1'000'000'000, ms = 1'700'000'000'000;
  int64_t now_ns() const noexcept override { return ns; }
  int64_t wall_ms() const noexcept override { return ms; }
};

request parse(std::string_view body) {
  auto r = fp::api::parse_openai_request(body);
  EXPECT_TRUE(r.has_value()) << body;
  return r ? *r : request{};
}

std::string key_of(std::string_view body, std::string_view tenant = "t") {
  return fc::make_key(parse(body), "up-model", tenant).hex();
}

std::string tmpdir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("fp-cache-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

}  // namespace

// ---- keys ---------------------------------------------------------------------------------------

TEST(CacheKey, KeyOrderWhitespaceAndNumberFormInvariant) {
  std::string a = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"top_p":1})";
  std::string b = R"({ "top_p" : 1.0, "temperature":0.0,
      "messages" : [ { "content" : "hi", "role" : "user" } ], "model" : "m" })";
  EXPECT_EQ(key_of(a), key_of(b));
  // stream, stream_options, user, metadata do not shape the answer
  std::string c = R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"top_p":1,
      "stream":true,"stream_options":{"include_usage":true},"user":"u1","metadata":{"x":"y"}})";
  EXPECT_EQ(key_of(a), key_of(c));
  // a single text part == the plain string
  std::string d = R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":0,"top_p":1})";
  EXPECT_EQ(key_of(a), key_of(d));
  // max_completion_tokens == max_tokens
  EXPECT_EQ(key_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5})"),
            key_of(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5})"));
}

TEST(CacheKey, RandomisedKeyOrderProperty) {
  boost::json::object o = boost::json::parse(R"({"model":"m","messages":[{"role":"system","content":"s"},
      {"role":"user","content":"q","name":"n"}],"temperature":0,"seed":3,"stop":["a","b"],"n":2,
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"type":"string"}}}}}],
      "response_format":{"type":"json_object"},"logit_bias":{"1":2,"3":-1}})").as_object();
  std::string base = fc::canonical_json(o);
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) {
    std::vector<std::pair<std::string, boost::json::value>> kv;
    for (auto& p : o) kv.emplace_back(std::string(p.key()), p.value());
    std::shuffle(kv.begin(), kv.end(), rng);
    boost::json::object s;
    for (auto& [k, v] : kv) s[k] = v;
    std::string text = boost::json::serialize(s);
    EXPECT_EQ(fc::canonical_json(boost::json::parse(text)), base);
  }
}

TEST(CacheKey, EverySemanticChangeChangesTheKey) {
  std::string base = R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0})";
  std::vector<std::string> variants = {
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q2"}],"temperature":0})",
      R"({"model":"m","messages":[{"role":"system","content":"s2"},{"role":"user","content":"q"}],"temperature":0})",
      R"({"model":"m","messages":[{"role":"developer","content":"s"},{"role":"user","content":"q"}],"temperature":0})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q","name":"bob"}],"temperature":0})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0.5})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"top_p":0.9})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"seed":1})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"stop":["x"]})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"n":2})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"max_tokens":7})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"logprobs":true})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"top_logprobs":2})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"presence_penalty":1})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"frequency_penalty":1})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"logit_bias":{"5":1}})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"response_format":{"type":"json_object"}})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"tools":[{"type":"function","function":{"name":"f"}}]})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"}],"temperature":0,"tool_choice":"none"})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"r"}],"temperature":0})",
      R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c2","content":"r"}],"temperature":0})",
  };
  std::set<std::string> keys{key_of(base)};
  for (auto& v : variants) EXPECT_TRUE(keys.insert(key_of(v)).second) << v;
  // model, tenant and endpoint
  auto r = parse(base);
  EXPECT_NE(fc::make_key(r, "a", "t").hex(), fc::make_key(r, "b", "t").hex());
  EXPECT_NE(fc::make_key(r, "a", "t1").hex(), fc::make_key(r, "a", "t2").hex());
}

TEST(CacheKey, TenantIdNeverContainsTheKey) {
  std::string t = fc::tenant_id("sk-secret-123", "");
  EXPECT_EQ(t.find("secret"), std::string::npos);
  EXPECT_NE(t, fc::tenant_id("sk-other", ""));
  EXPECT_EQ(fc::tenant_id("sk-secret-123", "acme"), "h:acme");
  EXPECT_EQ(fc::tenant_id("", ""), "anon");
}

// ---- policy -------------------------------------------------------------------------------------

TEST(CachePolicy, RepeatableOnlyAndHeaders) {
  fc::config cfg;
  auto t0 = parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0})");
  auto hot = parse(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  auto seeded = parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":1,"seed":4})");
  EXPECT_TRUE(fc::decide(cfg, t0, "m", {}).lookup);
  EXPECT_FALSE(fc::decide(cfg, hot, "m", {}).lookup);
  EXPECT_FALSE(fc::decide(cfg, hot, "m", {}).store);
  EXPECT_TRUE(fc::decide(cfg, seeded, "m", {}).store);
  cfg.cache_any_temperature_models = {"m"};
  EXPECT_TRUE(fc::decide(cfg, hot, "m", {}).lookup);
  cfg.cache_any_temperature_models.clear();
  auto d = fc::decide(cfg, t0, "m", {"no-cache", "", ""});
  EXPECT_FALSE(d.lookup);
  EXPECT_TRUE(d.store);
  d = fc::decide(cfg, t0, "m", {"No-Store", "", ""});
  EXPECT_TRUE(d.lookup);
  EXPECT_FALSE(d.store);
  d = fc::decide(cfg, t0, "m", {"max-age=30", "120", ""});
  EXPECT_EQ(d.max_age_s, 30);
  EXPECT_EQ(d.ttl_s, 120);
  d = fc::decide(cfg, t0, "m", {"", "0", ""});
  EXPECT_FALSE(d.store);
  EXPECT_FALSE(fc::decide(cfg, t0, "m", {}).semantic);
  EXPECT_TRUE(fc::decide(cfg, t0, "m", {"", "", "on"}).semantic);
  auto cc = fc::parse_cache_control(" max-age=\"12\" , no-cache");
  EXPECT_TRUE(cc.no_cache);
  EXPECT_EQ(cc.max_age_s, 12);
}

// bypasses() answers for begin() without the upstream model, and only when it can.
TEST(CachePolicy, EarlyBypassAgreesWithDecideAndCounts) {
  fc::config cfg;
  auto t0 = parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":0})");
  auto hot = parse(R"({"model":"m","messages":[{"role":"user","content":"x"}]})");
  {
    fc::cache c(cfg);
    EXPECT_TRUE(c.bypasses(hot, {}));
    EXPECT_FALSE(c.bypasses(t0, {}));
    EXPECT_TRUE(c.bypasses(t0, {"no-cache, no-store", "", ""}));
    EXPECT_FALSE(c.bypasses(t0, {"no-cache", "", ""}));  // still stores
    EXPECT_EQ(c.get_stats().bypass, 2u);
  }
  cfg.cache_any_temperature_models = {"up-model"};  // the decision now depends on the upstream model
  fc::cache c(cfg);
  EXPECT_FALSE(c.bypasses(hot, {}));
  EXPECT_EQ(c.get_stats().bypass, 0u);
}

// ---- entries and layers -------------------------------------------------------------------------

namespace {
std::shared_ptr<fc::entry> sample_entry(int64_t created_ms, int64_t ttl_ms, std::string text = "hello") {
  auto e = std::make_shared<fc::entry>();
  fp::api::chunk_meta meta{"chatcmpl-1", 1, "m", ""};
  fp::api::chunk_delta d1;
  d1.role = "assistant";
  d1.content = std::string_view(text);
  e->chunks.push_back(fp::api::make_chat_chunk(meta, d1));
  fp::api::chunk_delta d2;
  d2.finish = fp::api::finish_reason::stop;
  e->chunks.push_back(fp::api::make_chat_chunk(meta, d2));
  e->chunks.push_back(fp::api::make_usage_chunk(meta, fp::api::usage{3, 1, 0}));
  e->chunk_at_us = {10, 20, 30};
  fp::api::chunk_aggregator agg;
  for (auto& c : e->chunks) (void)agg.add(c);
  e->response = agg.finish().json;
  e->created_ms = created_ms;
  e->expires_ms = created_ms + ttl_ms;
  e->upstream_latency_ns = 123;
  return e;
}
}  // namespace

TEST(CacheEntry, SerializeRoundTripAndCorruptInput) {
  auto e = sample_entry(1000, 5000);
  std::string s = fc::serialize(*e);
  auto back = fc::deserialize(s);
  ASSERT_TRUE(back);
  ASSERT_EQ(back->chunks.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back->chunks[i].json, e->chunks[i].json);
    EXPECT_EQ(back->chunks[i].content, e->chunks[i].content);
    EXPECT_EQ(back->chunks[i].finish, e->chunks[i].finish);
  }
  EXPECT_TRUE(back->chunks[2].usage);
  EXPECT_EQ(back->response, e->response);
  EXPECT_EQ(back->expires_ms, 6000);
  for (size_t cut = 0; cut < s.size(); cut += 7) EXPECT_FALSE(fc::deserialize(s.substr(0, cut)));
  std::string bad = s;
  bad[21] ^= 0x7f;  // chunk count
  (void)fc::deserialize(bad);  // must not crash
}

TEST(CacheMemory, LruByteBudgetTtlMaxAge) {
  fc::memory_store m(64 * 1024, 1);
  auto e = sample_entry(1000, 1000);
  m.put("a", e);
  EXPECT_TRUE(m.get("a", 1500));
  EXPECT_FALSE(m.get("a", 1500, 100));  // older than max-age
  EXPECT_TRUE(m.get("a", 1500, 600));
  EXPECT_FALSE(m.get("a", 2000));       // expired (and dropped)
  EXPECT_EQ(m.entries(), 0u);
  size_t one = e->bytes();
  for (int i = 0; i < 200; ++i) m.put("k" + std::to_string(i), sample_entry(1000, 100000));
  EXPECT_LE(m.bytes(), 64u * 1024);
  EXPECT_GT(m.evictions(), 0u);
  EXPECT_TRUE(m.get("k199", 1500));   // most recent kept
  EXPECT_FALSE(m.get("k0", 1500));    // oldest evicted
  (void)one;
}

TEST(CacheLmdb, SurvivesReopenAndSweepsExpired) {
  std::string dir = tmpdir("reopen");
  {
    auto s = fc::lmdb_store::open(dir, 64 << 20, false);
    ASSERT_TRUE(s) << s.error().message;
    ASSERT_TRUE((*s)->put("k1", fc::serialize(*sample_entry(1000, 1000))));
    (*s)->put_async("k2", fc::serialize(*sample_entry(1000, 100000)));
    (*s)->flush();
  }
  auto s = fc::lmdb_store::open(dir, 64 << 20, false);
  ASSERT_TRUE(s);
  auto g = (*s)->get("k2");
  ASSERT_TRUE(g && *g);
  EXPECT_TRUE(fc::deserialize(**g));
  auto n = (*s)->sweep(5000);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  EXPECT_FALSE(*(*s)->get("k1"));
  std::filesystem::remove_all(dir);
}

TEST(CacheLmdb, KillDashNineDuringWritesLeavesAUsableStore) {
  std::string dir = tmpdir("kill9");
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // child: write forever, tell the parent once a good number is committed
    ::close(pipefd[0]);
    auto s = fc::lmdb_store::open(dir, 256 << 20, false);
    if (!s) ::_exit(2);
    std::string big(20000, 'x');
    for (int i = 0;; ++i) {
      auto e = sample_entry(1000, 1'000'000'000, big + std::to_string(i));
      (void)(*s)->put("key" + std::to_string(i), fc::serialize(*e));
      if (i == 200) (void)!::write(pipefd[1], "r", 1);
    }
  }
  ::close(pipefd[1]);
  char c = 0;
  ASSERT_EQ(::read(pipefd[0], &c, 1), 1);  // the child is mid-way through a stream of writes
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(pipefd[0]);
  auto s = fc::lmdb_store::open(dir, 256 << 20, false);
  ASSERT_TRUE(s) << s.error().message;
  for (int i = 0; i <= 200; ++i) {
    auto g = (*s)->get("key" + std::to_string(i));
    ASSERT_TRUE(g);
    ASSERT_TRUE(*g) << i;
    ASSERT_TRUE(fc::deserialize(**g)) << i;
  }
  ASSERT_TRUE((*s)->put("after", fc::serialize(*sample_entry(1000, 1000))));
  std::filesystem::remove_all(dir);
}

// ---- semantic -----------------------------------------------------------------------------------

TEST(CacheSemantic, GuardRejectsNearMissesAcceptsParaphrases) {
  using fc::reject_reason;
  EXPECT_EQ(fc::semantic_guard("How do I turn the alarm off?", "How do I turn the alarm on?"), reject_reason::polarity);
  EXPECT_EQ(fc::semantic_guard("Which foods contain gluten?", "Which foods don't contain gluten?"), reject_reason::negation);
  EXPECT_EQ(fc::semantic_guard("Is 8GB of RAM enough?", "Is 16GB of RAM enough?"), reject_reason::number);
  EXPECT_EQ(fc::semantic_guard("Best time to visit Iceland?", "Best time to visit Ireland?"), reject_reason::entity);
  EXPECT_EQ(fc::semantic_guard("How do I convert cups to grams?", "How do I convert grams to cups?"), reject_reason::direction);
  EXPECT_EQ(fc::semantic_guard("What is 12 divided by 4?", "What is 4 divided by 12?"), reject_reason::direction);
  EXPECT_EQ(fc::semantic_guard("How do I disable autocorrect?", "How can I turn off autocorrect?"), reject_reason::none);
  EXPECT_EQ(fc::semantic_guard("What is 7 times 8?", "What is 8 times 7?"), reject_reason::none);
  EXPECT_EQ(fc::semantic_guard("How do I change the colour of a cell?", "how do i change the color of a cell"), reject_reason::none);
  EXPECT_EQ(fc::semantic_guard("When did World War 2 end?", "When did World War II end?"), reject_reason::none);
  EXPECT_EQ(fc::semantic_guard("Why isn't my printer working?", "Why is my printer not working?"), reject_reason::none);
}

TEST(CacheSemantic, IndexScopesAndThreshold) {
  fc::lexical_embedder emb;
  fc::semantic_index idx(emb.dim(), 100);
  ASSERT_TRUE(idx.add("s1", emb.embed_now("How do I reverse a list in Python?"), {"k1", "How do I reverse a list in Python?", 10}));
  auto c = idx.search("s1", emb.embed_now("how can i reverse a list in python"), 4, 0.7, 0);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_GT(c[0].similarity, 0.9);
  EXPECT_TRUE(idx.search("s2", emb.embed_now("how can i reverse a list in python"), 4, 0.7, 0).empty());
  EXPECT_TRUE(idx.search("s1", emb.embed_now("how can i reverse a list in python"), 4, 0.7, 10).empty());  // expired
  fc::semantic_index::record r;
  std::vector<float> v;
  ASSERT_TRUE(fc::semantic_index::decode(fc::semantic_index::encode({"k", "q", 5}, {1, 2}), r, v));
  EXPECT_EQ(r.target, "k");
  EXPECT_EQ(r.text, "q");
  EXPECT_EQ(v.size(), 2u);
}

TEST(CacheSemantic, SharedPairsZeroWrongHitsAtDefaultThreshold) {
  std::string path = std::string(FASTPATH_SHARED_DIR) + "/data/semantic-pairs.jsonl";
  std::ifstream in(path);
  if (!in) GTEST_SKIP() << "shared data absent: " << path;
  fc::lexical_embedder emb;
  double threshold = fc::lexical_embedder{}.default_threshold();
  int wrong = 0, hits = 0, should = 0;
  std::string line;
  while (std::getline(in, line)) {
    auto o = boost::json::parse(line).as_object();
    std::string a(o["a"].as_string()), b(o["b"].as_string());
    bool label_hit = o["label"].as_string() == "hit";
    fc::semantic_index idx(emb.dim(), 2);
    idx.add("p", emb.embed_now(a), {"a", a, INT64_MAX});
    auto c = idx.search("p", emb.embed_now(b), 1, threshold, 0);
    bool hit = !c.empty() && fc::semantic_guard(a, b) == fc::reject_reason::none;
    if (label_hit) {
      ++should;
      hits += hit;
    } else if (hit) {
      ++wrong;
      ADD_FAILURE() << "wrong hit: " << a << " | " << b;
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(should, 0);
  EXPECT_GT(double(hits) / should, 0.5);
}

// ---- the facade: hits, fills, single-flight -----------------------------------------------------

namespace {

struct vector_sink final : fp::providers::chunk_sink {
  std::vector<std::string> got;
  bool alive = true;
  asio::awaitable<bool> on_chunk(const fp::api::chunk& c) override {
    got.push_back(c.json);
    co_return alive;
  }
};

// A fake upstream: counts calls, streams `n` chunks, waits on a gate before finishing.
struct fake_upstream {
  std::atomic<int> calls{0};
  std::atomic<bool> open{false};
  bool fail_midway = false;
  fc::upstream_stream_fn fn() {
    return [this](fp::providers::chunk_sink& sink) -> asio::awaitable<fp::result<fp::api::usage>> {
      ++calls;
      auto e = sample_entry(0, 1);
      if (!co_await sink.on_chunk(e->chunks[0])) co_return fp::make_error(fp::errc::cancelled, "gone");
      asio::steady_timer t(co_await asio::this_coro::executor);
      for (int i = 0; i < 100000 && !open.load(); ++i) {  // bounded: waits for the test to open the gate
        t.expires_after(std::chrono::microseconds(200));
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      if (fail_midway) co_return fp::make_error(fp::errc::upstream_error, "boom");
      for (size_t i = 1; i < e->chunks.size(); ++i)
        if (!co_await sink.on_chunk(e->chunks[i])) co_return fp::make_error(fp::errc::cancelled, "gone");
      co_return fp::api::usage{3, 1, 0};
    };
  }
};

}  // namespace

TEST(CacheFacade, MissFillsThenHitReplaysSameChunks) {
  fake_clock clk;
  fc::config cfg;
  fc::cache c(cfg, clk);
  auto req = parse(R"({"model":"m","messages":[{"role":"user","content":"q"}],"temperature":0,"stream":true})");
  fake_upstream up;
  up.open = true;
  asio::io_context ioc;
  std::vector<std::string> first, second;
  std::string st1, st2;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    for (int round = 0; round < 2; ++round) {
      fc::request_info info{&req, "m", "t", {}};
      auto t = co_await c.begin(info);
      (round ? st2 : st1) = std::string(fc::status_name(t.st));
      vector_sink s;
      auto r = co_await c.serve_stream(t, s, up.fn());
      EXPECT_TRUE(r);
      (round ? second : first) = s.got;
    }
  }, asio::detached);
  ioc.run();
  EXPECT_EQ(st1, "miss");
  EXPECT_EQ(st2, "hit");
  EXPECT_EQ(up.calls.load(), 1);
  EXPECT_EQ(first, second);
  EXPECT_EQ(first.size(), 3u);
  // TTL expiry through the injected clock
  clk.ms += 3601 * 1000;
  std::string st3;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    fc::request_info info{&req, "m", "t", {}};
    auto t = co_await c.begin(info);
    st3 = std::string(fc::status_name(t.st));
    vector_sink s;
    (void)co_await c.serve_stream(t, s, up.fn());
  }, asio::detached);
  ioc.restart();
  ioc.run();
  EXPECT_EQ(st3, "miss");
}

TEST(CacheFacade, FailedStreamIsNotStoredAndFollowersRecover) {
  fake_clock clk;
  fc::cache c(fc::config{}, clk);
  auto req = parse(R"({"model":"m","messages":[{"role":"user","content":"q"}],"temperature":0,"stream":true})");
  fake_upstream bad;
  bad.fail_midway = true;
  bad.open = true;
  asio::io_context ioc;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    fc::request_info info{&req, "m", "t", {}};
    auto t = co_await c.begin(info);
    vector_sink s;
    auto r = co_await c.serve_stream(t, s, bad.fn());
    EXPECT_FALSE(r);
    auto t2 = co_await c.begin(info);
    EXPECT_EQ(t2.st, fc::status::miss);  // nothing was stored
    vector_sink s2;
    fake_upstream good;
    good.open = true;
    EXPECT_TRUE(co_await c.serve_stream(t2, s2, good.fn()));
  }, asio::detached);
  ioc.run();
  EXPECT_EQ(c.get_stats().stores, 1u);
}

TEST(CacheFacade, SingleFlightAcrossThreadsStreamAndNot) {
  fc::cache c(fc::config{});
  auto sreq = parse(R"({"model":"m","messages":[{"role":"user","content":"same"}],"temperature":0,"stream":true})");
  auto creq = parse(R"({"model":"m","messages":[{"role":"user","content":"same"}],"temperature":0})");
  fake_upstream up;
  constexpr int per_thread = 25, threads = 4;
  asio::io_context ctxs[threads];
  std::atomic<int> done{0}, started{0};
  std::vector<std::vector<std::string>> streams(threads * per_thread);
  std::vector<std::string> statuses(threads * per_thread);
  std::vector<std::string> bodies(threads * per_thread);
  for (int th = 0; th < threads; ++th) {
    for (int i = 0; i < per_thread; ++i) {
      int id = th * per_thread + i;
      bool stream = id % 2 == 0;
      asio::co_spawn(ctxs[th], [&, id, stream]() -> asio::awaitable<void> {
        fc::request_info info{stream ? &sreq : &creq, "m", "t", {}};
        auto t = co_await c.begin(info);
        statuses[id] = std::string(fc::status_name(t.st));
        ++started;
        if (stream) {
          vector_sink s;
          auto r = co_await c.serve_stream(t, s, up.fn());
          EXPECT_TRUE(r);
          streams[id] = s.got;
        } else {
          auto r = co_await c.serve_complete(t, [&]() -> asio::awaitable<fp::result<fp::api::response>> {
            ++up.calls;
            auto e = sample_entry(0, 1);
            co_return fp::api::parse_openai_response(e->response);
          });
          EXPECT_TRUE(r);
          if (r) bodies[id] = r->content;
        }
        ++done;
      }, asio::detached);
    }
  }
  std::vector<std::thread> ts;
  for (int th = 0; th < threads; ++th) ts.emplace_back([&, th] { ctxs[th].run(); });
  for (int i = 0; i < 200000 && started.load() < threads * per_thread; ++i) std::this_thread::yield();
  up.open = true;  // every request has joined: let the one upstream call finish
  for (auto& t : ts) t.join();
  EXPECT_EQ(done.load(), threads * per_thread);
  EXPECT_EQ(up.calls.load(), 1);
  int leaders = 0;
  for (auto& s : statuses) leaders += s == "miss";
  EXPECT_EQ(leaders, 1);
  for (int id = 0; id < threads * per_thread; ++id) {
    if (id % 2 == 0) EXPECT_EQ(streams[id], streams[0]) << id;
    else EXPECT_EQ(bodies[id], "hello") << id;
  }
}

// The shared upstream call belongs to the flight: the first waiter leaving does not stop it; the
// last one leaving cancels it (through the runner's cancellation slot), and nothing is stored.
TEST(CacheFacade, LastWaiterLeavingCancelsTheSharedCall) {
  fc::cache c(fc::config{});
  auto req = parse(R"({"model":"m","messages":[{"role":"user","content":"leave"}],"temperature":0,"stream":true})");
  std::atomic<int> calls{0};
  bool saw_cancel = false;
  fc::upstream_stream_fn up = [&](fp::providers::chunk_sink& sink) -> asio::awaitable<fp::result<fp::api::usage>> {
    ++calls;
    auto e = sample_entry(0, 1);
    if (!co_await sink.on_chunk(e->chunks[0])) co_return fp::make_error(fp::errc::cancelled, "gone");
    asio::steady_timer t(co_await asio::this_coro::executor);
    t.expires_after(std::chrono::hours(1));  // only a cancellation ends this wait
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    auto cs = co_await asio::this_coro::cancellation_state;
    saw_cancel = cs.cancelled() != asio::cancellation_type::none;
    co_return fp::make_error(fp::errc::cancelled, "cancelled");
  };
  asio::io_context ioc;
  asio::cancellation_signal leave[2];
  vector_sink sinks[2];
  bool ended[2] = {false, false};
  for (int i = 0; i < 2; ++i)
    asio::co_spawn(ioc, [&, i]() -> asio::awaitable<void> {
      fc::request_info info{&req, "m", "t", {}};
      auto t = co_await c.begin(info);
      EXPECT_EQ(t.st, i == 0 ? fc::status::miss : fc::status::coalesced);
      auto r = co_await c.serve_stream(t, sinks[i], up);
      EXPECT_FALSE(r);
      ended[i] = true;
    }, asio::bind_cancellation_slot(leave[i].slot(), asio::detached));
  auto run_until = [&](auto pred) {
    for (int n = 0; n < 100000 && !pred(); ++n) ioc.run_one_for(std::chrono::milliseconds(10));
  };
  run_until([&] { return sinks[0].got.size() == 1 && sinks[1].got.size() == 1; });
  ASSERT_EQ(sinks[1].got.size(), 1u);
  leave[0].emit(asio::cancellation_type::terminal);  // the first request's client goes away
  run_until([&] { return ended[0]; });
  ASSERT_TRUE(ended[0]);
  for (int n = 0; n < 100; ++n) ioc.poll();
  EXPECT_FALSE(saw_cancel);  // the follower still waits: the call goes on
  EXPECT_FALSE(ended[1]);
  leave[1].emit(asio::cancellation_type::terminal);  // the last waiter goes away
  run_until([&] { return saw_cancel && ended[1]; });
  EXPECT_TRUE(saw_cancel);
  EXPECT_TRUE(ended[1]);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(c.get_stats().stores, 0u);
}

TEST(CacheEmbedders, LocalEngineMeanPooledHiddenStates) {
  std::string path = std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf";
  if (!std::ifstream(path)) GTEST_SKIP() << "shared model absent: " << path;
  fc::config cfg;
  cfg.semantic_embedder = "local";
  cfg.semantic_local_model = path;
  auto emb = fc::make_embedder(cfg);
  EXPECT_EQ(emb->name(), "local");
  EXPECT_EQ(emb->dim(), 64u);  // stories260K: n_embd 64
  asio::io_context ioc;
  std::vector<std::vector<float>> v;
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    for (const char* q : {"How do I turn off the alarm?", "How do I turn off the alarm?", "What is the capital of France?"}) {
      auto r = co_await emb->embed(q);
      EXPECT_TRUE(r);
      if (r) v.push_back(*r);
    }
  }, asio::detached);
  ioc.run();
  ASSERT_EQ(v.size(), 3u);
  auto dot = [](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
  };
  EXPECT_NEAR(dot(v[0], v[0]), 1.0, 1e-4);  // unit length
  EXPECT_EQ(v[0], v[1]);                    // deterministic (the KV cache is cleared between calls)
  EXPECT_LT(dot(v[0], v[2]), 0.9999);       // different questions, different vectors
}

TEST(CacheEmbedders, FactoryErrorsNameTheField) {
  fc::config cfg;
  cfg.semantic_embedder = "local";
  cfg.semantic_local_model = "/nonexistent/model.gguf";
  EXPECT_THROW(fc::make_embedder(cfg), std::runtime_error);
  cfg.semantic_embedder = "upstream";
  EXPECT_THROW(fc::make_embedder(cfg), std::runtime_error);  // no URL
  cfg.semantic_embeddings_url = "http://127.0.0.1:1/v1";
  auto e = fc::make_embedder(cfg);
  EXPECT_EQ(e->name(), "upstream");
  EXPECT_EQ(e->dim(), 256u);
}

TEST(CacheConfig, YamlFieldsAndErrors) {
  auto n = YAML::Load("default_ttl_s: 60\nsemantic_models: [a, b]\nredis_url: redis://127.0.0.1:1\n");
  auto c = fc::config_from_yaml(n);
  EXPECT_EQ(c.default_ttl_s, 60);
  EXPECT_EQ(c.semantic_models.size(), 2u);
  EXPECT_THROW(fc::config_from_yaml(YAML::Load("nope: 1")), std::runtime_error);
  EXPECT_THROW(fc::config_from_yaml(YAML::Load("memory_shards: 0")), std::runtime_error);
  auto e = fc::config_from_yaml(YAML::Load(
      "semantic_embedder: upstream\nsemantic_embeddings_url: http://h:1/v1\nsemantic_embeddings_dim: 64\n"
      "semantic_local_model: m.gguf\nsemantic_threshold: 0.8\n"));
  EXPECT_EQ(e.semantic_embeddings_dim, 64u);
  EXPECT_EQ(e.semantic_local_model, "m.gguf");
  EXPECT_DOUBLE_EQ(e.semantic_threshold, 0.8);
  EXPECT_THROW(fc::config_from_yaml(YAML::Load("semantic_embedder: word2vec")), std::runtime_error);
  EXPECT_THROW(fc::config_from_yaml(YAML::Load("semantic_embeddings_dim: 0")), std::runtime_error);
}
