// fp_http: URL parsing, and the upstream client against the server in-process over 127.0.0.1
// (keep-alive reuse, stale pooled connections, streamed pieces, deadlines, limits).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <atomic>
#include <thread>

#include "http/http.hpp"

namespace fp::http {
namespace {

namespace net = boost::asio;
using net::awaitable;

TEST(ParseBaseUrl, Forms) {
  auto a = parse_base_url("https://api.openai.com/v1/");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "api.openai.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->base_path, "/v1");
  auto b = parse_base_url("http://127.0.0.1:8081");
  ASSERT_TRUE(b);
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->port, 8081);
  EXPECT_EQ(b->base_path, "");
  auto c = parse_base_url("http://[::1]:9000/x");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 9000);
  EXPECT_FALSE(parse_base_url("ftp://x"));
  EXPECT_FALSE(parse_base_url("http://:80"));
  EXPECT_FALSE(parse_base_url("http://h:99999"));
  EXPECT_FALSE(parse_base_url("http://h:12ab"));
}

std::vector<header_view> views_of(const header_list& h) { return {h.begin(), h.end()}; }

// A handler that serves a few test routes.
class test_handler final : public handler {
 public:
  std::atomic<int> requests{0};
  awaitable<void> handle(request& req, responder& res) override {
    ++requests;
    if (req.path() == "/echo") {
      header_list h{{"Content-Type", "text/plain"}, {"x-method", std::string(req.method)}};
      co_await res.respond(200, h, req.body);
    } else if (req.path() == "/stream") {
      header_list h{{"Content-Type", "text/event-stream"}};
      co_await res.begin_stream(200, h);
      for (int i = 0; i < 5; ++i) {
        co_await res.write_chunk("data: " + std::to_string(i) + "\n\n");
        net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(50));
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
      }
      co_await res.end_stream();
    } else if (req.path() == "/whole") {  // a stream that exists all at once: one write
      header_list h{{"Content-Type", "text/event-stream"}};
      co_await res.respond_stream(200, views_of(h), req.body);
    } else if (req.path() == "/slow") {  // never answers in time
      net::steady_timer t(co_await net::this_coro::executor, std::chrono::seconds(3));
      res.watch_client();
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
      res.unwatch_client();
      header_list h;
      if (!res.client_gone()) co_await res.respond(200, h, "late");
    } else if (req.path() == "/stall") {  // one piece, then silence
      header_list h{{"Content-Type", "text/plain"}};
      co_await res.begin_stream(200, h);
      co_await res.write_chunk("first");
      net::steady_timer t(co_await net::this_coro::executor, std::chrono::seconds(3));
      res.watch_client();
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
      res.unwatch_client();
      co_await res.end_stream();
    } else {
      header_list h;
      co_await res.respond(404, h, "no");
    }
  }
};

struct fixture : ::testing::Test {
  test_handler h;
  std::unique_ptr<server> srv;
  std::thread th;
  uint16_t port = 0;
  void start(server_options o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 1;
    srv = std::make_unique<server>(o, h);
    ASSERT_TRUE(srv->listen());
    port = srv->port();
    th = std::thread([this] { srv->run(); });
  }
  void TearDown() override {
    if (srv) {
      srv->stop();
      th.join();
    }
  }
  net::io_context ioc;  // outlives the upstreams declared in the tests (their pooled sockets)
  template <class F>
  auto run_client(F f) {
    ioc.restart();
    auto fut = net::co_spawn(ioc, f(), net::use_future);
    ioc.run();
    return fut.get();
  }
  upstream make_upstream() { return upstream(*parse_base_url("http://127.0.0.1:" + std::to_string(port))); }
};

TEST_F(fixture, KeepAliveReusesOneConnection) {
  start();
  auto up = make_upstream();
  auto bodies = run_client([&]() -> awaitable<std::vector<std::string>> {
    std::vector<std::string> out;
    for (int i = 0; i < 3; ++i) {
      client_request r;
      r.target = "/echo";
      r.body = "hello " + std::to_string(i);
      auto resp = co_await up.send(r, {});
      if (!resp) co_return out;
      EXPECT_EQ((*resp)->status(), 200);
      EXPECT_EQ((*resp)->header("x-method"), "POST");
      auto b = co_await (*resp)->read_all();
      out.push_back(b ? *b : "ERR");
    }
    co_return out;
  });
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello 0", "hello 1", "hello 2"}));
  EXPECT_EQ(h.requests.load(), 3);
  EXPECT_EQ(srv->active_connections(), 1u);  // one pooled keep-alive connection served all three
}

// respond_stream: head, the one piece and the chunked terminator; the connection stays usable.
TEST_F(fixture, WholeStreamInOneResponseKeepsTheConnection) {
  start();
  auto up = make_upstream();
  auto bodies = run_client([&]() -> awaitable<std::vector<std::string>> {
    std::vector<std::string> out;
    for (std::string body : {"data: a\n\ndata: [DONE]\n\n", ""}) {
      client_request r;
      r.target = "/whole";
      r.body = body;
      auto resp = co_await up.send(r, {});
      if (!resp) co_return out;
      EXPECT_EQ((*resp)->status(), 200);
      EXPECT_EQ((*resp)->header("transfer-encoding"), "chunked");
      auto b = co_await (*resp)->read_all();
      out.push_back(b ? *b : "ERR");
    }
    co_return out;
  });
  EXPECT_EQ(bodies, (std::vector<std::string>{"data: a\n\ndata: [DONE]\n\n", ""}));
  EXPECT_EQ(srv->active_connections(), 1u);
}

TEST_F(fixture, StalePooledConnectionIsReplacedTransparently) {
  server_options o;
  o.idle_timeout = std::chrono::milliseconds(50);
  start(o);
  auto up = make_upstream();
  auto ok = run_client([&]() -> awaitable<int> {
    int good = 0;
    for (int i = 0; i < 2; ++i) {
      client_request r;
      r.target = "/echo";
      r.body = "x";
      auto resp = co_await up.send(r, {});
      if (resp && (co_await (*resp)->read_all())) ++good;
      if (i == 0) {  // let the server close the idle pooled connection
        net::steady_timer t(co_await net::this_coro::executor, std::chrono::milliseconds(200));
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
      }
    }
    co_return good;
  });
  EXPECT_EQ(ok, 2);
}

TEST_F(fixture, StreamedPiecesArriveInOrder) {
  start();
  auto up = make_upstream();
  auto text = run_client([&]() -> awaitable<std::string> {
    client_request r;
    r.method = "GET";
    r.target = "/stream";
    auto resp = co_await up.send(r, {});
    if (!resp) co_return "ERR";
    std::string all;
    int pieces = 0;
    for (int i = 0; i < 100; ++i) {
      auto p = co_await (*resp)->read_some();
      if (!p || p->empty()) break;
      ++pieces;
      all.append(*p);
    }
    EXPECT_GE(pieces, 2);  // delivered as they came, not buffered to the end
    co_return all;
  });
  EXPECT_EQ(text, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
}

TEST_F(fixture, FirstByteAndGapDeadlines) {
  start();
  auto up = make_upstream();
  auto codes = run_client([&]() -> awaitable<std::vector<errc>> {
    std::vector<errc> out;
    client_timeouts t;
    t.first_byte = std::chrono::milliseconds(100);
    client_request r;
    r.method = "GET";
    r.target = "/slow";
    auto a = co_await up.send(r, t);
    out.push_back(a ? errc::ok : a.error().code);
    t.first_byte = std::chrono::milliseconds(2000);
    t.chunk_gap = std::chrono::milliseconds(100);
    r.target = "/stall";
    auto b = co_await up.send(r, t);
    if (!b) {
      out.push_back(b.error().code);
      co_return out;
    }
    auto p1 = co_await (*b)->read_some();
    out.push_back(p1 ? errc::ok : p1.error().code);
    auto p2 = co_await (*b)->read_some();
    out.push_back(p2 ? errc::ok : p2.error().code);
    co_return out;
  });
  EXPECT_EQ(codes, (std::vector<errc>{errc::upstream_timeout, errc::ok, errc::upstream_timeout}));
}

TEST_F(fixture, ConnectRefusedIsUnreachable) {
  start();
  uint16_t p = port;
  srv->stop();
  th.join();
  srv.reset();
  auto up = upstream(*parse_base_url("http://127.0.0.1:" + std::to_string(p)));
  auto code = run_client([&]() -> awaitable<errc> {
    client_request r;
    r.target = "/echo";
    auto a = co_await up.send(r, {});
    co_return a ? errc::ok : a.error().code;
  });
  EXPECT_EQ(code, errc::upstream_unreachable);
}

}  // namespace
}  // namespace fp::http
