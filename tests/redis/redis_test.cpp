// fp_redis against a real redis-server (the ctest fixture, plus private ones for kill/restart)
// and against fake servers on 127.0.0.1 port 0 (silence, garbage).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "fakes/redis_server.hpp"
#include "redis/redis.hpp"

namespace asio = boost::asio;
namespace fr = fp::redis;

namespace {

template <class T>
T run(asio::awaitable<T> a) {
  asio::io_context ioc;
  auto f = asio::co_spawn(ioc, std::move(a), asio::use_future);
  ioc.run();
  return f.get();
}

std::string fixture_socket() {
  std::ifstream in(std::string(FASTPATH_REDIS_FIXTURE_DIR) + "/socket");
  std::string s;
  std::getline(in, s);
  return s;
}

fr::config fixture_cfg() {
  fr::config c;
  c.unix_socket = fixture_socket();
  return c;
}

#define REQUIRE_FIXTURE()                                                              \
  if (fixture_socket().empty()) GTEST_SKIP() << "no redis fixture (run through ctest)"

// A private redis-server on a unix socket, for tests that kill it.
using fp::test::private_redis;

// Ready when the client under test gets PONG through the socket.
bool pings(const std::string& sock) {
  fr::config c;
  c.unix_socket = sock;
  fr::client cl(c);
  auto r = run(cl.command({"PING"}));
  return r && r->str == "PONG";
}

}  // namespace

TEST(RespParser, EveryByteSplit) {
  std::string wire = "+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\na\r\n:7\r\n-ERR bad\r\n";
  for (size_t split = 0; split <= wire.size(); ++split) {
    fr::resp_parser p;
    std::vector<fr::reply> got;
    for (auto part : {wire.substr(0, split), wire.substr(split)}) {
      ASSERT_TRUE(p.feed(part));
      fr::reply r;
      while (p.next(r) == 1) got.push_back(r);
    }
    ASSERT_EQ(got.size(), 6u) << split;
    EXPECT_EQ(got[0].str, "OK");
    EXPECT_EQ(got[1].integer, 42);
    EXPECT_EQ(got[2].str, "hello");
    EXPECT_TRUE(got[3].is_nil());
    ASSERT_EQ(got[4].elements.size(), 2u);
    EXPECT_EQ(got[4].elements[1].integer, 7);
    EXPECT_TRUE(got[5].is_error());
  }
  fr::resp_parser bad;
  bad.feed("?garbage\r\n");
  fr::reply r;
  EXPECT_EQ(bad.next(r), -1);
}

TEST(RedisUrl, Parse) {
  fr::config c;
  ASSERT_TRUE(fr::parse_url("redis://:pw@127.0.0.1:6380/2", c));
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 6380);
  EXPECT_EQ(c.db, 2);
  EXPECT_EQ(c.password, "pw");
  fr::config u;
  ASSERT_TRUE(fr::parse_url("unix:///tmp/r.sock", u));
  EXPECT_EQ(u.unix_socket, "/tmp/r.sock");
  EXPECT_FALSE(fr::parse_url("http://x", u));
  EXPECT_FALSE(fr::parse_url("redis://h:99999", u));
}

TEST(RedisClient, CommandsPipelineBinaryAndTcp) {
  REQUIRE_FIXTURE();
  fr::client c(fixture_cfg());
  std::string bin("a\0b\r\nc", 6);
  auto r = run(c.command({"SET", "fp:test:bin", bin}));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->str, "OK");
  auto g = run(c.command({"GET", "fp:test:bin"}));
  ASSERT_TRUE(g);
  EXPECT_EQ(g->str, bin);
  auto p = run(c.pipeline({{"DEL", "fp:test:n"}, {"INCR", "fp:test:n"}, {"INCRBY", "fp:test:n", "5"}, {"GET", "fp:nope:x"}}));
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 4u);
  EXPECT_EQ((*p)[2].integer, 6);
  EXPECT_TRUE((*p)[3].is_nil());
  auto e = run(c.command({"NOSUCHCOMMAND"}));
  ASSERT_TRUE(e);  // a Redis error reply is a reply
  EXPECT_TRUE(e->is_error());
  // TCP too
  std::ifstream in(std::string(FASTPATH_REDIS_FIXTURE_DIR) + "/port");
  int port = 0;
  in >> port;
  fr::config tc;
  tc.port = static_cast<uint16_t>(port);
  fr::client t(tc);
  auto tg = run(t.command({"GET", "fp:test:bin"}));
  ASSERT_TRUE(tg);
  EXPECT_EQ(tg->str, bin);
}

TEST(RedisClient, EvalShaFallsBackToEval) {
  REQUIRE_FIXTURE();
  fr::client c(fixture_cfg());
  (void)run(c.command({"SCRIPT", "FLUSH"}));
  std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
  (void)run(c.command({"DEL", "fp:test:eval"}));
  auto a = run(c.eval(script, {"fp:test:eval"}, {"3"}));  // NOSCRIPT -> EVAL
  ASSERT_TRUE(a);
  EXPECT_EQ(a->integer, 3);
  auto b = run(c.eval(script, {"fp:test:eval"}, {"4"}));  // EVALSHA now cached
  ASSERT_TRUE(b);
  EXPECT_EQ(b->integer, 7);
  EXPECT_EQ(fr::script_sha1("return 1"), "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

TEST(RedisClient, ManyThreadsManyInFlight) {
  REQUIRE_FIXTURE();
  fr::config cfg = fixture_cfg();
  cfg.pool_size = 3;
  fr::client c(cfg);
  (void)run(c.command({"DEL", "fp:test:ctr"}));
  constexpr int threads = 4, per = 200;
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      asio::io_context ioc;
      for (int i = 0; i < per; ++i)
        asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
          std::vector<std::string> cmd{"INCR", "fp:test:ctr"};
          auto r = co_await c.command(std::move(cmd));
          if (r && r->type == fr::reply::kind::integer) ++ok;
        }, asio::detached);
      ioc.run();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), threads * per);
  auto v = run(c.command({"GET", "fp:test:ctr"}));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->str, std::to_string(threads * per));
}

TEST(RedisClient, SilentServerTimesOutGarbageServerErrors) {
  asio::io_context srv;
  asio::ip::tcp::acceptor acc(srv, {asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = acc.local_endpoint().port();
  std::vector<asio::ip::tcp::socket> held;
  bool garbage = false;
  std::function<void()> accept = [&] {
    acc.async_accept([&](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      if (garbage) asio::write(s, asio::buffer(std::string("!!!not resp\r\n")), ec);
      held.push_back(std::move(s));
      accept();
    });
  };
  accept();
  std::thread st([&] { srv.run(); });
  fr::config cfg;
  cfg.port = port;
  cfg.command_timeout = std::chrono::milliseconds(100);
  cfg.reconnect_backoff = std::chrono::milliseconds(0);
  {
    fr::client c(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto r = run(c.command({"GET", "x"}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, fp::errc::upstream_timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(c.stats().timeouts, 1u);
  }
  asio::post(srv, [&] { garbage = true; });
  {
    fr::client c(cfg);
    fp::result<fr::reply> r = fp::make_error(fp::errc::internal, "");
    for (int i = 0; i < 20; ++i) {  // the post above may race the first accept: bounded retries
      r = run(c.command({"GET", "x"}));
      if (!r && r.error().code == fp::errc::corrupt_data) break;
    }
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, fp::errc::corrupt_data);
  }
  asio::post(srv, [&] { acc.close(); held.clear(); });
  st.join();
}

TEST(RedisClient, ServerKilledFailsFastThenReconnects) {
  private_redis pr("kill");
  if (!pr.start([&] { return pings(pr.sock); })) GTEST_SKIP() << "cannot start redis-server";
  fr::config cfg;
  cfg.unix_socket = pr.sock;
  cfg.reconnect_backoff = std::chrono::milliseconds(0);
  fr::client c(cfg);
  ASSERT_TRUE(run(c.command({"SET", "k", "v"})));
  pr.kill9();
  auto r = run(c.command({"GET", "k"}));
  EXPECT_FALSE(r);
  auto t0 = std::chrono::steady_clock::now();
  auto r2 = run(c.command({"GET", "k"}));  // no server: fails fast, never hangs
  EXPECT_FALSE(r2);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ASSERT_TRUE(pr.start([&] { return pings(pr.sock); }));
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {  // bounded; the server is up (start() pinged it)
    auto r3 = run(c.command({"PING"}));
    back = r3 && r3->str == "PONG";
  }
  EXPECT_TRUE(back);
  EXPECT_GE(c.stats().reconnects, 2u);
}
