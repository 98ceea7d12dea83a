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
#include <boost/asio/ssl/stream.hpp>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <charconv>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/thread_spares.hpp"
#include "http/http.hpp"
#include "http/read_buffer.hpp"
#include "http/wire.hpp"

namespace fp::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
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

constexpr size_t piece_bytes = 16384;      // the most one read_some hands over
constexpr size_t max_head_bytes = 64 * 1024;  // a larger response head is an upstream error
constexpr int64_t no_deadline = 0;

struct pool;

// One upstream connection: a plain socket or TLS over one, its read buffer, and its deadline.
// Deadlines are lazy: every wait just stores `deadline_ns`, and its pool's sweep timer (one for all
// the pool's connections) cancels the wait once it is due; a request on a kept-alive connection
// normally touches no timer at all (Beast's tcp_stream armed and cancelled one around every read).
struct connection {
  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
  pool& owner;                        // the pool whose sweep watches deadline_ns
  size_t slot = 0;                    // index in owner.conns
  int64_t deadline_ns = no_deadline;  // the current wait's deadline (steady clock); 0: none
  bool timed_out = false;             // the sweep cancelled the current wait

  read_buffer in;                 // bytes read and not yet used
  std::unique_ptr<char[]> piece;  // decoded chunked payload handed out by read_some
  std::string head_copy;          // the response head, kept while its body is read
  std::string out;                // the request head being written

  // A TLS stream when tls_ctx is set, a plain socket otherwise; registered with p's sweep.
  connection(pool& p, const net::any_io_executor& ex, ssl::context* tls_ctx);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  tcp::socket& sock() { return tls ? tls->next_layer() : *plain; }

  void set_deadline(int64_t at);
  void clear_deadline() { deadline_ns = no_deadline; }
  // Parked in the pool: no deadline, so a sweep that runs meanwhile leaves it alone.
  void idle() { deadline_ns = no_deadline; }

  void close() {
    boost::system::error_code ig;
    deadline_ns = no_deadline;
    sock().close(ig);
  }
};

// A per-thread pool: only touched from the thread (io_context) that owns it.
//
// Its sweep timer fires at the earliest deadline of its connections, but never more than
// sweep_horizon_ns after it was armed: while requests run it wakes every horizon (and re-arms only
// then, or when a wait with an earlier deadline starts), so parking a connection and taking it
// again cost no timer operation; once nothing waits, it fires one last time and stays unarmed, so
// a pending timer keeps io_context::run() from returning for at most the horizon. 50 ms: a 5 ms
// horizon (200 wake-ups a second under load) cost the c=1 p99 ~6 us (overhead.sh, 34.8 vs 40.8
// us added p99, nginx 34.7 / 38.1 in the same runs).
struct pool {
  static constexpr int64_t sweep_horizon_ns = 50'000'000;

  std::weak_ptr<void> owner_alive;  // the upstream that owns this pool (a sweep may outlive both)
  std::vector<connection*> conns;  // every connection of this pool (idle, in use, connecting)
  std::optional<net::steady_timer> sweep;  // exists while conns is not empty (on their executor)
  int64_t sweep_at_ns = 0;                 // when the sweep fires; 0: not armed
  uint64_t sweep_gen = 0;

  size_t open = 0;  // idle + in use
  std::deque<net::steady_timer*> waiters;
  std::vector<std::unique_ptr<connection>> idle;  // (destroyed first: its connections leave conns)

  // The most recently parked connection, or null when none is idle.
  std::unique_ptr<connection> take_idle() {
    if (idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  void wake_one() {
    if (!waiters.empty()) {
      waiters.front()->cancel();
      waiters.pop_front();
    }
  }

  void add(connection& c, const net::any_io_executor& ex) {
    if (conns.empty()) sweep.emplace(ex);
    c.slot = conns.size();
    conns.push_back(&c);
  }
  void remove(connection& c) {
    conns[c.slot] = conns.back();
    conns[c.slot]->slot = c.slot;
    conns.pop_back();
    if (conns.empty()) {  // (a pending wait ends as cancelled, one already due sees the gen)
      sweep.reset();
      sweep_at_ns = 0;
      ++sweep_gen;
    }
  }

  // A wait until `at` started on one of the connections.
  void watch(int64_t at) {
    if (sweep_at_ns != 0 && sweep_at_ns <= at) return;  // the sweep runs in time
    arm(std::min(at, now_ns() + sweep_horizon_ns));
  }

  void arm(int64_t at) {
    sweep_at_ns = at;
    uint64_t gen = ++sweep_gen;
    sweep->expires_at(steady::time_point(std::chrono::nanoseconds(at)));
    sweep->async_wait([this, gen, alive = owner_alive](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: re-armed, or the last connection gone
      auto keep = alive.lock();
      if (!keep || gen != sweep_gen) return;  // the pool is gone, or re-armed after this was due
      sweep_at_ns = 0;
      run_sweep();
    });
  }

  // Cancels the waits that are due; re-arms for the next deadline if any wait remains.
  void run_sweep() {
    const int64_t now = now_ns();
    int64_t next = INT64_MAX;
    for (connection* c : conns) {
      if (c->deadline_ns == no_deadline) continue;
      if (now >= c->deadline_ns) {
        c->deadline_ns = no_deadline;
        c->timed_out = true;
        boost::system::error_code ig;
        c->sock().cancel(ig);  // the awaited operation ends with operation_aborted
      } else {
        next = std::min(next, c->deadline_ns);
      }
    }
    if (next != INT64_MAX) arm(std::min(next, now + sweep_horizon_ns));
  }
};

connection::connection(pool& p, const net::any_io_executor& ex, ssl::context* tls_ctx) : owner(p) {
  if (tls_ctx) {
    tls.emplace(ex, *tls_ctx);
  } else {
    plain.emplace(ex);
  }
  p.add(*this, ex);
}
connection::~connection() { owner.remove(*this); }

void connection::set_deadline(int64_t at) {
  timed_out = false;
  deadline_ns = at;
  owner.watch(at);
}

std::chrono::milliseconds until(steady::time_point deadline) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
  return d.count() > 0 ? d : std::chrono::milliseconds(0);
}

std::chrono::milliseconds min_ms(std::chrono::milliseconds a, std::chrono::milliseconds b) { return a < b ? a : b; }

}  // namespace

namespace {
// One read into c's free buffer space, through TLS or not. A plain function returning the
// operation's awaitable (no coroutine of its own, and no co_await inside ?: — gcc 12 destroys such
// temporaries twice).
awaitable<std::tuple<boost::system::error_code, size_t>> read_into(connection& c) {
  auto b = net::buffer(c.in.space(), c.in.space_size());
  if (c.tls) return c.tls->async_read_some(b, use_tuple);
  return c.plain->async_read_some(b, use_tuple);
}
}  // namespace

struct upstream::impl : std::enable_shared_from_this<upstream::impl> {
  url_parts where;
  upstream_options opts;
  std::optional<ssl::context> ssl_ctx;
  std::string host_header;
  const uint64_t id = next_id();  // tells this upstream apart in the per-thread pool cache

  std::mutex dns_mu;
  std::vector<tcp::endpoint> dns_eps;
  steady::time_point dns_expiry{};

  std::mutex pools_mu;
  std::unordered_map<std::thread::id, std::unique_ptr<pool>> pools;

  static uint64_t next_id() {
    static std::atomic<uint64_t> n{0};
    return ++n;
  }

  pool& this_thread_pool() {
    // A small per-thread cache in front of the locked map (a worker talks to few upstreams).
    struct slot {
      uint64_t id = 0;
      pool* p = nullptr;
    };
    thread_local std::array<slot, 8> cache{};
    thread_local size_t next = 0;
    for (const auto& s : cache)
      if (s.id == id) return *s.p;
    pool* found;
    {
      std::lock_guard lk(pools_mu);
      auto& p = pools[std::this_thread::get_id()];
      if (!p) {
        p = std::make_unique<pool>();
        p->owner_alive = weak_from_this();
      }
      found = p.get();
    }
    cache[next++ % cache.size()] = {id, found};
    return *found;
  }

  void release(pool& p, std::unique_ptr<connection> c, bool reusable) {
    if (reusable && c && p.idle.size() < opts.max_idle_per_thread) {
      c->idle();
      p.idle.push_back(std::move(c));
    } else {
      if (c) c->close();
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
    t.async_wait([&](boost::system::error_code ec) {
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

  // A connection when none is idle: a new one while the pool has room, else (bounded by the
  // connect timeout) the next one released. Its own coroutine, so send()'s frame, allocated for
  // every request, does not carry this rare path's timer and results. second: a reused one.
  awaitable<result<std::pair<std::unique_ptr<connection>, bool>>> acquire(pool& p, client_timeouts t,
                                                                        steady::time_point total_deadline) {
    // Bounded: wait (up to the connect timeout) for a slot when the pool is full.
    auto slot_deadline = min_ms(t.connect, until(total_deadline));
    auto wait_until = steady::now() + slot_deadline;
    while (p.open >= opts.max_connections_per_thread) {
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
    if (auto c = p.take_idle()) co_return std::pair{std::move(c), true};
    ++p.open;
    auto r = co_await connect(p, steady::now() + min_ms(t.connect, until(total_deadline)));
    if (!r) {
      release(p, nullptr, false);
      co_return r.error();
    }
    co_return std::pair{std::move(*r), false};
  }

  awaitable<result<std::unique_ptr<connection>>> connect(pool& p, steady::time_point deadline) {
    auto eps = co_await resolve(deadline);
    if (!eps) co_return eps.error();
    auto ex = co_await net::this_coro::executor;
    auto c = std::make_unique<connection>(p, ex, where.tls ? &*ssl_ctx : nullptr);
    // A burst of SSE events should arrive in one read (one wake-up, one write to the client).
    c->in.cap = 16 * 1024;
    c->in.buf.reset(new char[c->in.cap]);
    c->piece.reset(new char[piece_bytes]);
    auto& s = c->sock();
    c->set_deadline(std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count());
    boost::system::error_code ec = net::error::host_not_found;
    for (const auto& ep : *eps) {  // each address in turn until one accepts
      boost::system::error_code ig;
      if (s.is_open()) s.close(ig);
      s.open(ep.protocol(), ig);
      auto [cec] = co_await s.async_connect(ep, use_tuple);
      ec = cec;
      if (!ec || c->timed_out || ec == net::error::operation_aborted) break;
    }
    if (c->timed_out) {
      c->close();
      co_return make_error(errc::upstream_timeout, fmt::format("connect to {}:{} timed out", where.host, where.port));
    }
    if (ec == net::error::operation_aborted) {
      c->close();
      co_return make_error(errc::cancelled, "cancelled");
    }
    if (ec) {
      c->close();
      std::lock_guard lk(dns_mu);
      dns_eps.clear();  // re-resolve next time
      co_return make_error(errc::upstream_unreachable,
                           fmt::format("cannot connect to {}:{}: {}", where.host, where.port, ec.message()));
    }
    boost::system::error_code ig;
    s.set_option(tcp::no_delay(true), ig);
    s.non_blocking(true, ig);  // send() tries a direct write first
    if (where.tls) {
      if (!SSL_set_tlsext_host_name(c->tls->native_handle(), where.host.c_str())) {
        c->close();
        co_return make_error(errc::upstream_unreachable, fmt::format("TLS: cannot set SNI for {}", where.host));
      }
      if (opts.verify_tls) c->tls->set_verify_callback(ssl::host_name_verification(where.host));
      auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, use_tuple);
      if (c->timed_out || hec) {
        bool to = c->timed_out;
        c->close();
        if (to) co_return make_error(errc::upstream_timeout, fmt::format("TLS handshake with {} timed out", where.host));
        if (hec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
        co_return make_error(errc::upstream_unreachable, fmt::format("TLS handshake with {} failed: {}", where.host, hec.message()));
      }
    }
    c->clear_deadline();
    co_return c;
  }
};

struct client_response::impl {
  std::shared_ptr<upstream::impl> up;
  pool* p = nullptr;
  std::unique_ptr<connection> conn;
  wire::head head;  // fields view into conn->head_copy
  client_timeouts t;
  int64_t total_deadline_ns = 0;
  int64_t ttfb = -1;
  uint64_t remaining = 0;  // body_kind::length
  wire::chunked_decoder chunked;
  bool body_complete = false;
  bool finished = false;

  ~impl() {
    if (conn) up->release(*p, std::move(conn), false);
  }

  // Back to a fresh state (the connection released as unfinished if still held).
  void recycle() {
    if (conn) up->release(*p, std::move(conn), false);
    up.reset();
    p = nullptr;
    ttfb = -1;
    remaining = 0;
    chunked.reset();
    body_complete = false;
    finished = false;
  }

  void done(bool ok) {
    finished = true;
    bool reuse = ok && body_complete && head.keep_alive && conn->in.size() == 0;
    up->release(*p, std::move(conn), reuse);
  }

  // Hands over body bytes already in the buffer: a view into the read buffer (length, until
  // close) or the decoded payload (chunked). Empty when nothing is buffered.
  result<std::string_view> take_buffered() {
    auto& c = *conn;
    size_t avail = c.in.size();
    if (avail == 0) return std::string_view{};
    switch (head.body) {
      case wire::body_kind::length: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining, avail));
        std::string_view v(c.in.data(), take);
        c.in.begin += take;
        remaining -= take;
        if (remaining == 0) body_complete = true;
        return v;
      }
      case wire::body_kind::until_close: {
        std::string_view v(c.in.data(), avail);
        c.in.begin = c.in.end;
        return v;
      }
      case wire::body_kind::chunked: {
        // Every chunk already received, up to the piece size, in one piece.
        auto st = chunked.decode(c.in.data(), avail, c.piece.get(), piece_bytes);
        c.in.begin += st.consumed;
        if (st.error) return make_error(errc::upstream_error, "upstream sent a malformed chunked body", 502);
        if (st.done) body_complete = true;
        return std::string_view(c.piece.get(), st.produced);
      }
      case wire::body_kind::none:
        body_complete = true;
        return std::string_view{};
    }
    return std::string_view{};
  }

  // read_some without I/O: what is buffered, the end of the body, or nullopt when it needs a read.
  std::optional<result<std::string_view>> try_read_some() {
    if (finished) return std::string_view{};
    if (!body_complete) {
      auto v = take_buffered();
      if (!v) {
        done(false);
        return v.error();
      }
      if (!v->empty()) return *v;
    }
    if (body_complete) {
      done(true);
      return std::string_view{};
    }
    return std::nullopt;
  }

  awaitable<result<std::string_view>> read_some() {
    for (int spins = 0; spins < 1 << 20; ++spins) {
      if (auto r = try_read_some()) co_return std::move(*r);
      auto& c = *conn;
      c.in.make_room(c.in.cap);
      const int64_t now = now_ns();
      const int64_t gap_at = now + static_cast<int64_t>(t.chunk_gap.count()) * 1000000;
      const bool total_bound = total_deadline_ns <= gap_at;
      c.set_deadline(std::min(gap_at, total_deadline_ns));
      auto [ec, n] = co_await read_into(c);
      c.clear_deadline();
      if (ec == net::error::eof && head.body == wire::body_kind::until_close) {
        body_complete = true;
        head.keep_alive = false;
        continue;
      }
      if (ec || n == 0) {
        bool timeout = c.timed_out;
        done(false);
        if (timeout)
          co_return make_error(errc::upstream_timeout,
                               total_bound ? fmt::format("upstream exceeded the total timeout of {} ms", t.total.count())
                                           : fmt::format("no data from upstream for {} ms", t.chunk_gap.count()));
        if (ec == net::error::operation_aborted) co_return make_error(errc::cancelled, "cancelled");
        co_return make_error(errc::upstream_error,
                             fmt::format("upstream connection failed mid-response: {}",
                                         ec ? ec.message() : std::string("connection closed")),
                             502);
      }
      c.in.end += n;
    }
    done(false);
    co_return make_error(errc::upstream_error, "upstream response made no progress", 502);
  }
};

client_response::client_response(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
namespace {
// Finished exchanges' state, kept per thread for the next one (its header field list keeps its
// capacity): no allocation per request for it.
using spare_responses = thread_spares<std::unique_ptr<client_response::impl>>;

std::unique_ptr<client_response::impl> take_response_state() {
  auto r = spare_responses::take();
  return r ? std::move(r) : std::make_unique<client_response::impl>();
}
}  // namespace

client_response::~client_response() {
  if (!impl_) return;
  impl_->recycle();
  spare_responses::give(std::move(impl_));
}
int client_response::status() const noexcept { return impl_->head.status; }
int64_t client_response::ttfb_ns() const noexcept { return impl_->ttfb; }
std::string_view client_response::header(std::string_view name) const noexcept { return impl_->head.get(name); }
awaitable<result<std::string_view>> client_response::read_some() { return impl_->read_some(); }
std::optional<result<std::string>> client_response::try_read_all(size_t limit) {
  auto& im = *impl_;
  if (im.finished || im.body_complete || !im.conn) return std::nullopt;
  if (im.head.body != wire::body_kind::length) return std::nullopt;
  auto& c = *im.conn;
  if (im.remaining > c.in.size()) return std::nullopt;  // not all here yet
  if (im.remaining > limit)
    return result<std::string>(make_error(errc::upstream_error, fmt::format("upstream body larger than {} bytes", limit), 502));
  auto v = im.take_buffered();  // all of it (a Content-Length body is a view of the buffer)
  if (!v) {
    im.done(false);
    return result<std::string>(v.error());
  }
  std::string out(*v);
  im.done(true);
  return result<std::string>(std::move(out));
}

awaitable<result<std::string>> client_response::read_all(size_t limit) {
  std::string out;
  for (;;) {
    auto t = impl_->try_read_some();  // a body already in the buffer needs no coroutine
    if (!t) t.emplace(co_await impl_->read_some());  // (no co_await inside ?: with gcc 12)
    auto r = std::move(*t);
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

// Writes the request: one direct non-blocking write first (nearly always the socket buffer takes
// the whole request: one sendmsg, no reactor round trip, no coroutine frame), then what is left
// asynchronously under the connection's deadline (write_rest; always for TLS).
// Returns true when done; `ec` is set on a failure, `done` is what was written.
bool write_now(connection& c, const std::array<net::const_buffer, 2>& msg, size_t& done,
               boost::system::error_code& ec) {
  done = 0;
  if (c.tls) return false;
  const size_t total = msg[0].size() + msg[1].size();
  done = c.plain->write_some(msg, ec);
  if (ec == net::error::would_block || ec == net::error::try_again) {
    ec = {};
    done = 0;
    return false;
  }
  return ec || done == total;
}

awaitable<std::tuple<boost::system::error_code, size_t>> write_rest(connection& c, std::array<net::const_buffer, 2> rest,
                                                                     size_t done) {
  if (done >= rest[0].size()) {
    rest[1] += done - rest[0].size();
    rest[0] = net::const_buffer();
  } else {
    rest[0] += done;
  }
  if (c.tls) return net::async_write(*c.tls, rest, use_tuple);  // (the op keeps its own copy of rest)
  return net::async_write(*c.plain, rest, use_tuple);
}

}  // namespace

awaitable<result<std::unique_ptr<client_response>>> upstream::send(client_request req, client_timeouts t) {
  std::vector<header_view> hv(req.headers.begin(), req.headers.end());
  client_request_view v{req.method, req.target, hv, req.body};
  co_return co_await send(v, t);
}

awaitable<result<std::unique_ptr<client_response>>> upstream::send(const client_request_view& req, client_timeouts t) {
  auto up = impl_;
  const int64_t start = now_ns();
  const int64_t total_deadline = start + static_cast<int64_t>(t.total.count()) * 1000000;
  const auto total_deadline_tp = steady::time_point(std::chrono::nanoseconds(total_deadline));
  pool& p = up->this_thread_pool();

  // The request head as raw bytes, built into the connection's own buffer (kept between
  // requests): written with the body in one gather write.
  auto build_head = [&](std::string& head) {
    head.clear();
    head.append(req.method).append(" ").append(req.target).append(" HTTP/1.1\r\nHost: ").append(up->host_header);
    head.append("\r\n");
    for (const auto& [k, v] : req.headers) {
      if (iequals(k, "host") || iequals(k, "content-length") || iequals(k, "connection") ||
          iequals(k, "transfer-encoding"))
        continue;  // set here
      head.append(k).append(": ").append(v).append("\r\n");
    }
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
      char num[24];
      auto [end, ec] = std::to_chars(num, num + sizeof num, req.body.size());
      head.append("Content-Length: ").append(num, end).append("\r\n");
    }
    head.append("\r\n");
  };

  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<connection> c = p.take_idle();
    bool reused = c != nullptr;
    int64_t now = start;  // still the time when a pooled connection is taken at once
    if (!c) {
      auto got = co_await up->acquire(p, t, total_deadline_tp);
      if (!got) co_return got.error();
      c = std::move(got->first);
      reused = got->second;
    }
    if (attempt > 0 || !reused) now = now_ns();

    const auto fb = std::min<int64_t>(t.first_byte.count(), (total_deadline - now) / 1000000);
    const int64_t fb_deadline = std::min(now + t.first_byte.count() * int64_t{1000000}, total_deadline);
    c->set_deadline(fb_deadline);
    auto fail = [&](boost::system::error_code ec, bool first_byte_phase, bool timed_out) -> error {
      if (timed_out)
        return make_error(errc::upstream_timeout, first_byte_phase
                              ? fmt::format("no response from upstream within {} ms", std::max<int64_t>(fb, 0))
                              : "upstream write timed out");
      if (ec == net::error::operation_aborted) return make_error(errc::cancelled, "cancelled");
      return make_error(errc::upstream_unreachable, fmt::format("upstream connection failed: {}", ec.message()));
    };
    build_head(c->out);
    const std::array<net::const_buffer, 2> msg{net::buffer(c->out), net::buffer(req.body)};
    boost::system::error_code wec;
    size_t written = 0;
    if (!write_now(*c, msg, written, wec)) wec = std::get<0>(co_await write_rest(*c, msg, written));
    const int64_t sent = now_ns();
    if (wec) {
      bool to = c->timed_out;
      up->release(p, std::move(c), false);
      if (reused && !to && wec != net::error::operation_aborted) continue;
      co_return fail(wec, false, to);
    }

    // The response head (interim 1xx responses skipped).
    auto ri = take_response_state();
    wire::head_scan scan;
    size_t got = 0;
    boost::system::error_code rec;
    bool bad_head = false;
    const char* bad_what = "";
    for (;;) {
      auto& cc = *c;
      std::string_view avail = cc.in.view();
      auto pr = wire::parse_response_head(avail, ri->head, scan, max_head_bytes, req.method);
      if (pr.status == wire::parse::done) {
        if (ri->head.status >= 100 && ri->head.status < 200 && ri->head.status != 101) {
          cc.in.begin += ri->head.size;
          scan.reset();
          continue;
        }
        break;
      }
      if (pr.status != wire::parse::need_more) {
        bad_head = true;
        bad_what = pr.what;
        break;
      }
      if (!cc.in.make_room(max_head_bytes)) {
        bad_head = true;
        bad_what = "response head too large";
        break;
      }
      auto [ec, n] = co_await read_into(cc);
      if (ec || n == 0) {
        rec = ec ? ec : net::error::eof;
        break;
      }
      cc.in.end += n;
      got += n;
    }
    if (bad_head) {
      up->release(p, std::move(c), false);
      co_return make_error(errc::upstream_error, fmt::format("upstream sent a malformed response: {}", bad_what), 502);
    }
    if (rec) {
      bool to = c->timed_out;
      bool stale = reused && got == 0 && !to &&
                   (rec == net::error::eof || rec == net::error::connection_reset || rec == net::error::broken_pipe);
      up->release(p, std::move(c), false);
      if (stale) continue;
      co_return fail(rec, true, to);
    }
    c->clear_deadline();
    // Keep the head (its fields are views) apart from the buffer the body streams through.
    auto& h = ri->head;
    const char* base = c->in.data();
    c->head_copy.assign(base, h.size);
    const char* nb = c->head_copy.data();
    auto rebase = [&](std::string_view v) { return v.empty() ? v : std::string_view(nb + (v.data() - base), v.size()); };
    for (auto& f : h.fields) {
      f.name = rebase(f.name);
      f.value = rebase(f.value);
    }
    h.reason = rebase(h.reason);
    c->in.begin += h.size;
    ri->up = up;
    ri->p = &p;
    ri->t = t;
    ri->total_deadline_ns = total_deadline;
    ri->remaining = h.content_length;
    ri->body_complete = h.body == wire::body_kind::none;
    ri->ttfb = now_ns() - sent;
    ri->conn = std::move(c);
    co_return std::make_unique<client_response>(std::move(ri));
  }
  co_return make_error(errc::upstream_unreachable, "upstream closed the connection twice");
}

}  // namespace fp::http
