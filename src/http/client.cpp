// The upstream HTTP/1.1 client: per-thread bounded keep-alive pools, cached DNS, verified TLS with
// SNI, and a deadline on every wait (connect, first byte, gap between body pieces, total).
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <fmt/format.h>

#include <charconv>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "http/http.hpp"

namespace fp::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using net::awaitable;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
using steady = std::chrono::steady_clock;

result<url_parts> parse_base_url(std::string_view url) {
  url_parts u;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
    u.port = 80;
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
    u.tls = true;
    u.port = 443;
  } else {
    return make_error(errc::invalid_request, fmt::format("'{}': base URL must start with http:// or https://", url));
  }
  auto slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::string_view host = hostport;
  if (!hostport.empty() && hostport.front() == '[') {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return make_error(errc::invalid_request, fmt::format("'{}': bad IPv6 host", url));
    host = hostport.substr(1, close - 1);
    hostport.remove_prefix(close + 1);
    if (!hostport.empty() && hostport.front() != ':')
      return make_error(errc::invalid_request, fmt::format("'{}': bad host", url));
  } else {
    auto colon = hostport.rfind(':');
    host = hostport.substr(0, colon);
    hostport = colon == std::string_view::npos ? std::string_view{} : hostport.substr(colon);
  }
  if (!hostport.empty()) {  // ":port"
    auto p = hostport.substr(1);
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc{} || ptr != p.data() + p.size() || v == 0 || v > 65535)
      return make_error(errc::invalid_request, fmt::format("'{}': bad port", url));
    u.port = static_cast<uint16_t>(v);
  }
  if (host.empty()) return make_error(errc::invalid_request, fmt::format("'{}': missing host", url));
  u.host = std::string(host);
  u.base_path = std::string(path);
  return u;
}

namespace {

constexpr size_t piece_bytes = 16384;  // the most one read_some hands over

struct connection {
  // Where read_some puts body bytes: per connection (allocated once, not zeroed), not per request.
  std::unique_ptr<char[]> piece{new char[piece_bytes]};
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buf;
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// A per-thread pool: only touched from the thread (io_context) that owns it.
struct pool {
  std::vector<std::unique_ptr<connection>> idle;
  size_t open = 0;  // idle + in use
  std::deque<net::steady_timer*> waiters;
  void wake_one() {
    if (!waiters.empty()) {
      waiters.front()->cancel();
      waiters.pop_front();
    }
  }
};

std::chrono::milliseconds until(steady::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return d.count() > 0 ? d : std::chrono::milliseconds(0);
}

std::chrono::milliseconds min_ms(std::chrono::milliseconds a, std::chrono::milliseconds b) { return a < b ? a : b; }

}  // namespace

struct upstream::impl : std::enable_shared_from_this<upstream::impl> {
  url_parts where;
  upstream_options opts;
  std::optional<ssl::context> ssl_ctx;
  std::string host_header;

  std::mutex dns_mu;
  std::vector<tcp::endpoint> dns_eps;
  steady::time_point dns_expiry{};

  std::mutex pools_mu;
  std::unordered_map<std::thread::id, std::unique_ptr<pool>> pools;

  pool& this_thread_pool() {
    std::lock_guard lk(pools_mu);
    auto& p = pools[std::this_thread::get_id()];
    if (!p) p = std::make_unique<pool>();
    return *p;
  }

  void release(pool& p, std::unique_ptr<connection> c, bool reusable) {
    if (reusable && c && p.idle.size() < opts.max_idle_per_thread) {
      p.idle.push_back(std::move(c));
    } else {
      if (c) {
        beast::error_code ig;
        c->lowest().socket().close(ig);
      }
      --p.open;
    }
    p.wake_one();
  }

  awaitable<result<std::vector<tcp::endpoint>>> resolve(steady::time_point deadline) {
    {
      std::lock_guard lk(dns_mu);
      if (!dns_eps.empty() && steady::now() < dns_expiry) co_return dns_eps;
    }
    auto ex = co_await net::this_coro::executor;
    tcp::resolver r(ex);
    // The resolver runs on asio's internal thread; bound it with the connect deadline.
    net::steady_timer t(ex);
    t.expires_at(deadline);
    bool timed_out = false;
    t.async_wait([&](beast::error_code ec) {
      if (!ec) {
        timed_out = true;
        r.cancel();
      }
    });
    auto [ec, res] = co_await r.async_resolve(where.host, std::to_string(where.port), use_tuple);
    t.cancel();
    if (timed_out) co_return make_error(errc::upstream_timeout, fmt::format("DNS lookup of {} timed out", where.host));
    if (ec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
    if (ec) co_return make_error(errc::upstream_unreachable, fmt::format("cannot resolve {}: {}", where.host, ec.message()));
    std::vector<tcp::endpoint> eps;
    for (const auto& e : res) eps.push_back(e.endpoint());
    std::lock_guard lk(dns_mu);
    dns_eps = eps;
    dns_expiry = steady::now() + opts.dns_ttl;
    co_return eps;
  }

  awaitable<result<std::unique_ptr<connection>>> connect(steady::time_point deadline) {
    auto eps = co_await resolve(deadline);
    if (!eps) co_return eps.error();
    auto ex = co_await net::this_coro::executor;
    auto c = std::make_unique<connection>();
    // Beast reads as much as the buffer can take and starts a flat_buffer at 512 bytes: without
    // this a burst of SSE events arrives in many small reads (one wake-up and one write each).
    c->buf.reserve(16 * 1024);
    beast::tcp_stream* s;
    if (where.tls) {
      c->tls.emplace(ex, *ssl_ctx);
      s = &beast::get_lowest_layer(*c->tls);
    } else {
      c->plain.emplace(ex);
      s = &*c->plain;
    }
    s->expires_after(until(deadline));
    auto [ec, ep] = co_await s->async_connect(*eps, use_tuple);
    if (ec == beast::error::timeout)
      co_return make_error(errc::upstream_timeout, fmt::format("connect to {}:{} timed out", where.host, where.port));
    if (ec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
    if (ec) {
      std::lock_guard lk(dns_mu);
      dns_eps.clear();  // re-resolve next time
      co_return make_error(errc::upstream_unreachable,
                           fmt::format("cannot connect to {}:{}: {}", where.host, where.port, ec.message()));
    }
    beast::error_code ig;
    s->socket().set_option(tcp::no_delay(true), ig);
    s->socket().non_blocking(true, ig);  // send() tries a direct write first
    if (where.tls) {
      if (!SSL_set_tlsext_host_name(c->tls->native_handle(), where.host.c_str()))
        co_return make_error(errc::upstream_unreachable, fmt::format("TLS: cannot set SNI for {}", where.host));
      if (opts.verify_tls) c->tls->set_verify_callback(ssl::host_name_verification(where.host));
      s->expires_after(until(deadline));
      auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, use_tuple);
      if (hec == beast::error::timeout)
        co_return make_error(errc::upstream_timeout, fmt::format("TLS handshake with {} timed out", where.host));
      if (hec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
      if (hec)
        co_return make_error(errc::upstream_unreachable, fmt::format("TLS handshake with {} failed: {}", where.host, hec.message()));
    }
    s->expires_never();
    co_return c;
  }
};

struct client_response::impl {
  std::shared_ptr<upstream::impl> up;
  pool* p = nullptr;
  std::unique_ptr<connection> conn;
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  client_timeouts t;
  steady::time_point total_deadline;
  int64_t ttfb = -1;
  bool finished = false;

  ~impl() {
    if (conn) up->release(*p, std::move(conn), false);
  }

  void done(bool ok) {
    finished = true;
    bool reuse = ok && parser && parser->is_done() && parser->keep_alive();
    up->release(*p, std::move(conn), reuse);
  }

  template <class Stream>
  awaitable<std::tuple<beast::error_code, size_t>> read_some_on(Stream& s) {
    co_return co_await bhttp::async_read_some(s, conn->buf, *parser, use_tuple);
  }

  awaitable<result<std::string_view>> read_some() {
    if (finished) co_return std::string_view{};
    for (int spins = 0; spins < 1 << 20; ++spins) {
      if (parser->is_done()) {
        done(true);
        co_return std::string_view{};
      }
      auto& body = parser->get().body();
      char* const piece = conn->piece.get();
      body.data = piece;
      body.size = piece_bytes;
      bool total_bound = until(total_deadline) <= t.chunk_gap;
      conn->lowest().expires_after(min_ms(t.chunk_gap, until(total_deadline)));
      auto [ec, n] = conn->tls ? co_await read_some_on(*conn->tls) : co_await read_some_on(*conn->plain);
      if (ec == bhttp::error::need_buffer) ec = {};
      size_t got = piece_bytes - body.size;
      if (ec) {
        done(false);
        if (ec == beast::error::timeout)
          co_return make_error(errc::upstream_timeout,
                               total_bound ? fmt::format("upstream exceeded the total timeout of {} ms", t.total.count())
                                           : fmt::format("no data from upstream for {} ms", t.chunk_gap.count()));
        if (ec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
        co_return make_error(errc::upstream_error, fmt::format("upstream connection failed mid-response: {}", ec.message()),
                             502);
      }
      if (got > 0) {
        // Hand over every body byte already received (all the chunked-encoding pieces in the
        // buffer, up to the piece size), not one HTTP chunk per call. No I/O: an incomplete
        // piece stays in the buffer for the next call.
        while (body.size > 0 && conn->buf.size() > 0 && !parser->is_done()) {
          beast::error_code pec;
          size_t used = parser->put(conn->buf.data(), pec);
          conn->buf.consume(used);
          if (pec == bhttp::error::need_buffer || pec == bhttp::error::need_more) pec = {};
          if (pec) {
            done(false);
            co_return make_error(errc::upstream_error, fmt::format("upstream sent a malformed body: {}", pec.message()), 502);
          }
          if (used == 0) break;
        }
        got = piece_bytes - body.size;
        co_return std::string_view(piece, got);
      }
    }
    done(false);
    co_return make_error(errc::upstream_error, "upstream response made no progress", 502);
  }
};

client_response::client_response(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
client_response::~client_response() = default;
int client_response::status() const noexcept { return static_cast<int>(impl_->parser->get().result_int()); }
int64_t client_response::ttfb_ns() const noexcept { return impl_->ttfb; }
std::string_view client_response::header(std::string_view name) const noexcept {
  const auto& h = impl_->parser->get();
  auto it = h.find(beast::string_view(name.data(), name.size()));
  if (it == h.end()) return {};
  return std::string_view(it->value().data(), it->value().size());
}
awaitable<result<std::string_view>> client_response::read_some() { return impl_->read_some(); }
awaitable<result<std::string>> client_response::read_all(size_t limit) {
  std::string out;
  for (;;) {
    auto r = co_await impl_->read_some();
    if (!r) co_return r.error();
    if (r->empty()) co_return out;
    if (out.size() + r->size() > limit)
      co_return make_error(errc::upstream_error, fmt::format("upstream body larger than {} bytes", limit), 502);
    out.append(*r);
  }
}

upstream::upstream(url_parts where, upstream_options opts) : impl_(std::make_shared<impl>()) {
  impl_->where = std::move(where);
  impl_->opts = opts;
  const auto& w = impl_->where;
  bool default_port = (w.tls && w.port == 443) || (!w.tls && w.port == 80);
  impl_->host_header = default_port ? w.host : fmt::format("{}:{}", w.host, w.port);
  if (w.tls) {
    impl_->ssl_ctx.emplace(ssl::context::tls_client);
    impl_->ssl_ctx->set_default_verify_paths();
    impl_->ssl_ctx->set_verify_mode(opts.verify_tls ? ssl::verify_peer : ssl::verify_none);
  }
}
upstream::~upstream() = default;
const url_parts& upstream::where() const noexcept { return impl_->where; }

namespace {
template <class Stream, class Buffers>
awaitable<std::tuple<beast::error_code, size_t>> write_on(Stream& s, const Buffers& b) {
  co_return co_await net::async_write(s, b, use_tuple);
}
template <class Stream, class Parser>
awaitable<std::tuple<beast::error_code, size_t>> read_header_on(Stream& s, beast::flat_buffer& b, Parser& p) {
  co_return co_await bhttp::async_read_header(s, b, p, use_tuple);
}
}  // namespace

awaitable<result<std::unique_ptr<client_response>>> upstream::send(client_request req, client_timeouts t) {
  auto up = impl_;
  auto start = steady::now();
  auto total_deadline = start + t.total;
  pool& p = up->this_thread_pool();

  // The request head as raw bytes (no serializer): written with the body in one gather write.
  std::string head;
  head.reserve(160 + req.target.size() + 64 * req.headers.size());
  head.append(req.method).append(" ").append(req.target).append(" HTTP/1.1\r\nHost: ").append(up->host_header);
  head.append("\r\n");
  for (const auto& [k, v] : req.headers) {
    if (beast::iequals(k, "host") || beast::iequals(k, "content-length") || beast::iequals(k, "connection") ||
        beast::iequals(k, "transfer-encoding"))
      continue;  // set here
    head.append(k).append(": ").append(v).append("\r\n");
  }
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
    fmt::format_to(std::back_inserter(head), "Content-Length: {}\r\n", req.body.size());
  head.append("\r\n");
  const std::array<net::const_buffer, 2> msg{net::buffer(head), net::buffer(req.body)};
  const size_t msg_bytes = head.size() + req.body.size();

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<connection> c;
    bool reused = false;
    if (!p.idle.empty()) {
      c = std::move(p.idle.back());
      p.idle.pop_back();
      reused = true;
    } else {
      // Bounded: wait (up to the connect timeout) for a slot when the pool is full.
      auto slot_deadline = min_ms(t.connect, until(total_deadline));
      auto wait_until = steady::now() + slot_deadline;
      while (p.open >= up->opts.max_connections_per_thread) {
        if (!p.idle.empty()) break;
        net::steady_timer timer(co_await net::this_coro::executor);
        timer.expires_at(wait_until);
        p.waiters.push_back(&timer);
        auto [ec] = co_await timer.async_wait(use_tuple);
        std::erase(p.waiters, &timer);
        if (!ec) co_return make_error(errc::upstream_timeout, "upstream connection pool exhausted");
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) co_return make_error(errc::cancelled, "cancelled");
      }
      if (!p.idle.empty()) {
        c = std::move(p.idle.back());
        p.idle.pop_back();
        reused = true;
      } else {
        ++p.open;
        auto r = co_await up->connect(steady::now() + min_ms(t.connect, until(total_deadline)));
        if (!r) {
          up->release(p, nullptr, false);
          co_return r.error();
        }
        c = std::move(*r);
      }
    }

    auto fb = min_ms(t.first_byte, until(total_deadline));
    beast::error_code wec;
    size_t direct = 0;
    if (!c->tls) {
      // Nearly always the socket buffer takes the whole request at once: one sendmsg, no timer,
      // no reactor round trip. Only what is left is written asynchronously under the deadline.
      auto& sock = c->plain->socket();
      direct = sock.write_some(msg, wec);
      if (wec == net::error::would_block || wec == net::error::try_again) {
        wec = {};
        direct = 0;
      }
    }
    c->lowest().expires_after(fb);
    if (!wec && direct < msg_bytes) {
      beast::buffers_suffix<std::array<net::const_buffer, 2>> rest(msg);
      rest.consume(direct);
      auto [ec2, n2] = c->tls ? co_await write_on(*c->tls, rest) : co_await write_on(*c->plain, rest);
      wec = ec2;
    }
    auto sent = steady::now();
    auto fail = [&](beast::error_code ec, bool first_byte_phase) -> error {
      if (ec == beast::error::timeout)
        return make_error(errc::upstream_timeout, first_byte_phase
                              ? fmt::format("no response from upstream within {} ms", fb.count())
                              : "upstream write timed out");
      if (ec == net::error::operation_aborted) return make_error(errc::cancelled, "cancelled");
      return make_error(errc::upstream_unreachable, fmt::format("upstream connection failed: {}", ec.message()));
    };
    if (wec) {
      up->release(p, std::move(c), false);
      if (reused && wec != beast::error::timeout && wec != net::error::operation_aborted) continue;
      co_return fail(wec, false);
    }
    auto ri = std::make_unique<client_response::impl>();
    ri->up = up;
    ri->p = &p;
    ri->t = t;
    ri->total_deadline = total_deadline;
    ri->parser.emplace();
    ri->parser->header_limit(64 * 1024);
    ri->parser->body_limit(boost::none);
    auto [rec, rn] = c->tls ? co_await read_header_on(*c->tls, c->buf, *ri->parser)
                            : co_await read_header_on(*c->plain, c->buf, *ri->parser);
    if (rec) {
      bool stale = reused && rn == 0 &&
                   (rec == bhttp::error::end_of_stream || rec == net::error::eof ||
                    rec == net::error::connection_reset || rec == net::error::broken_pipe);
      up->release(p, std::move(c), false);
      if (stale) continue;
      co_return fail(rec, true);
    }
    ri->ttfb = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now() - sent).count();
    ri->conn = std::move(c);
    co_return std::make_unique<client_response>(std::move(ri));
  }
  co_return make_error(errc::upstream_unreachable, "upstream closed the connection twice");
}

}  // namespace fp::http
