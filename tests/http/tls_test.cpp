// fp_http's upstream client over TLS, against an in-process TLS server with a self-signed
// certificate made at test time (skipped when the `openssl` command is missing): the handshake,
// a chunked body read through the TLS stream, and certificate verification refusing the
// self-signed certificate when it is on.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "http/http.hpp"

namespace fp::http {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

// A TLS server answering `n` connections, one request each, with a chunked "hello" body.
struct tls_server {
  net::io_context ioc;
  tcp::acceptor acc{ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  ssl::context ctx{ssl::context::tls_server};
  std::thread th;
  int handshakes_ok = 0;

  tls_server(const std::string& cert, const std::string& key, int n) {
    ctx.use_certificate_chain_file(cert);
    ctx.use_private_key_file(key, ssl::context::pem);
    th = std::thread([this, n] {
      for (int i = 0; i < n; ++i) {
        tcp::socket s(ioc);
        boost::system::error_code ec;
        acc.accept(s, ec);
        if (ec) return;
        ssl::stream<tcp::socket&> st(s, ctx);
        st.handshake(ssl::stream_base::server, ec);
        if (ec) continue;  // e.g. the client refused the certificate
        ++handshakes_ok;
        net::streambuf in;
        net::read_until(st, in, "\r\n\r\n", ec);
        if (ec) continue;
        std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        net::write(st, net::buffer(out), ec);
        st.shutdown(ec);
      }
    });
  }
  ~tls_server() {
    boost::system::error_code ig;
    acc.close(ig);
    if (th.joinable()) th.join();
  }
  uint16_t port() const { return acc.local_endpoint().port(); }
};

struct TlsClient : ::testing::Test {
  std::filesystem::path dir;
  std::string cert, key;
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs the openssl command";
    dir = std::filesystem::temp_directory_path() / ("fp-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    cert = (dir / "cert.pem").string();
    key = (dir / "key.pem").string();
    std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout '" + key +
                      "' -out '" + cert + "' >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a test certificate";
  }
  void TearDown() override {
    std::error_code ig;
    if (!dir.empty()) std::filesystem::remove_all(dir, ig);
  }
};

TEST_F(TlsClient, HandshakeAndChunkedBodyThroughTls) {
  tls_server srv(cert, key, 1);
  net::io_context ioc;
  upstream_options o;
  o.verify_tls = false;  // self-signed
  upstream up(*parse_base_url("https://127.0.0.1:" + std::to_string(srv.port())), o);
  auto fut = net::co_spawn(ioc, [&]() -> net::awaitable<std::string> {
    client_request r;
    r.target = "/x";
    r.body = "{}";
    auto resp = co_await up.send(r, {});
    if (!resp) co_return "send failed: " + resp.error().message;
    if ((*resp)->status() != 200) co_return "status " + std::to_string((*resp)->status());
    auto b = co_await (*resp)->read_all();
    co_return b ? *b : "read failed: " + b.error().message;
  }, net::use_future);
  ioc.run();
  EXPECT_EQ(fut.get(), "hello");
  EXPECT_EQ(srv.handshakes_ok, 1);
}

TEST_F(TlsClient, VerificationRefusesASelfSignedCertificate) {
  tls_server srv(cert, key, 1);
  net::io_context ioc;
  upstream up(*parse_base_url("https://127.0.0.1:" + std::to_string(srv.port())));  // verify_tls on
  auto fut = net::co_spawn(ioc, [&]() -> net::awaitable<std::string> {
    client_request r;
    r.target = "/x";
    auto resp = co_await up.send(r, {});
    if (resp) co_return "connected";
    co_return std::string(errc_name(resp.error().code)) + ": " + resp.error().message;
  }, net::use_future);
  ioc.run();
  std::string got = fut.get();
  EXPECT_EQ(got.rfind("upstream_unreachable: TLS handshake with 127.0.0.1 failed", 0), 0u) << got;
}

}  // namespace
}  // namespace fp::http
