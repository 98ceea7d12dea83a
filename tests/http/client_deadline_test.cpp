// fp_http upstream client: deadlines of several connections in one per-thread pool (one sweep
// timer serves them all), and a parked keep-alive connection leaves no work behind for
// io_context::run().
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>
#include <thread>
#include <vector>

#include "http/http.hpp"

namespace fp::http {
namespace {

namespace net = boost::asio;
using net::awaitable;

class deadline_handler final : public handler {
 public:
  awaitable<void> handle(request& req, responder& res) override {
    header_list h;
    if (req.path() == "/slow") {  // answers after 3 s unless the client goes away first
      net::steady_timer t(co_await net::this_coro::executor, std::chrono::seconds(3));
      res.watch_client();
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
      res.unwatch_client();
      if (!res.client_gone()) co_await res.respond(200, h, "late");
    } else {
      co_await res.respond(200, h, req.body);
    }
  }
};

struct client_deadlines : ::testing::Test {
  deadline_handler h;
  std::unique_ptr<server> srv;
  std::thread th;
  net::io_context ioc;  // outlives the upstreams declared in the tests (their pooled sockets)

  void SetUp() override {
    server_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    srv = std::make_unique<server>(o, h);
    ASSERT_TRUE(srv->listen());
    th = std::thread([this] { srv->run(); });
  }
  void TearDown() override {
    srv->stop();
    th.join();
  }
  upstream make_upstream() { return upstream(*parse_base_url("http://127.0.0.1:" + std::to_string(srv->port()))); }
};

awaitable<errc> exchange(upstream& up, std::string target, client_timeouts t) {
  client_request r;
  r.target = std::move(target);
  r.body = "x";
  auto resp = co_await up.send(r, t);
  if (!resp) co_return resp.error().code;
  auto b = co_await (*resp)->read_all();
  co_return b ? errc::ok : b.error().code;
}

// With the default deadlines (a minute), a request whose connection is parked for reuse must not
// keep run() busy until a deadline that no longer applies.
TEST_F(client_deadlines, ParkedConnectionLeavesNoWork) {
  auto up = make_upstream();
  for (int i = 0; i < 3; ++i) {
    errc code = errc::internal;
    net::co_spawn(ioc, [&]() -> awaitable<void> { code = co_await exchange(up, "/echo", {}); }, net::detached);
    ioc.restart();
    ioc.run_for(std::chrono::seconds(20));
    EXPECT_TRUE(ioc.stopped()) << "run() still had work after request " << i;
    EXPECT_EQ(code, errc::ok);
  }
  EXPECT_EQ(srv->active_connections(), 1u);  // one parked connection served all three
}

// Three exchanges at once on one pool: each connection's deadline applies to it alone, a later
// wait with an earlier deadline is not held up by the earlier one's, and a parked connection
// taken again gets its new deadline enforced.
TEST_F(client_deadlines, EachConnectionKeepsItsOwnDeadline) {
  auto up = make_upstream();
  std::vector<std::pair<char, errc>> done;  // in completion order
  auto start = [&](char name, std::string target, int first_byte_ms) {
    client_timeouts t;
    t.first_byte = std::chrono::milliseconds(first_byte_ms);
    net::co_spawn(
        ioc,
        [&, name, target, t]() -> awaitable<void> { done.emplace_back(name, co_await exchange(up, target, t)); },
        net::detached);
  };
  start('a', "/slow", 900);
  start('b', "/slow", 150);
  start('c', "/echo", 150);
  ioc.run();
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0], std::make_pair('c', errc::ok));
  EXPECT_EQ(done[1], std::make_pair('b', errc::upstream_timeout));
  EXPECT_EQ(done[2], std::make_pair('a', errc::upstream_timeout));

  // c's connection is the one parked: its next wait times out too, and the one after that succeeds.
  done.clear();
  start('d', "/slow", 150);
  ioc.restart();
  ioc.run();
  start('e', "/echo", 150);
  ioc.restart();
  ioc.run();
  EXPECT_EQ(done, (std::vector<std::pair<char, errc>>{{'d', errc::upstream_timeout}, {'e', errc::ok}}));
}

// A pool at its connection limit: a second request waits for the first one's connection and is
// served on it; one that cannot get a connection within the connect timeout fails with
// upstream_timeout ("pool exhausted"), and the pool still serves the next request.
TEST_F(client_deadlines, FullPoolWaitsForAConnectionWithinTheConnectTimeout) {
  upstream_options o;
  o.max_connections_per_thread = 1;
  upstream up(*parse_base_url("http://127.0.0.1:" + std::to_string(srv->port())), o);
  std::vector<std::pair<char, errc>> done;
  auto start = [&](char name, std::string target, int first_byte_ms, int connect_ms) {
    client_timeouts t;
    t.first_byte = std::chrono::milliseconds(first_byte_ms);
    t.connect = std::chrono::milliseconds(connect_ms);
    net::co_spawn(
        ioc,
        [&, name, target, t]() -> awaitable<void> { done.emplace_back(name, co_await exchange(up, target, t)); },
        net::detached);
  };
  start('a', "/slow", 200, 5000);  // holds the only connection until its first-byte timeout
  start('b', "/echo", 5000, 5000);  // waits for it, then is served on it
  ioc.run();
  EXPECT_EQ(done, (std::vector<std::pair<char, errc>>{{'a', errc::upstream_timeout}, {'b', errc::ok}}));

  done.clear();
  start('c', "/slow", 2000, 5000);  // holds it for 2 s
  start('d', "/echo", 5000, 100);   // gives up on the pool after 100 ms
  ioc.restart();
  ioc.run();
  EXPECT_EQ(done, (std::vector<std::pair<char, errc>>{{'d', errc::upstream_timeout}, {'c', errc::upstream_timeout}}));
  done.clear();
  start('e', "/echo", 5000, 5000);
  ioc.restart();
  ioc.run();
  EXPECT_EQ(done, (std::vector<std::pair<char, errc>>{{'e', errc::ok}}));
}

}  // namespace
}  // namespace fp::http
