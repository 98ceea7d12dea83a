// The HTTP/1.1 server: one io_context + acceptor (SO_REUSEPORT) per thread, one coroutine per
// connection. Responses are written as raw bytes (status line, headers, chunked framing) so a
// streamed SSE event costs one gather write and no copies of the payload.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/status.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <array>
#include <atomic>
#include <cstring>
#include <csignal>
#include <exception>
#include <optional>
#include <thread>
#include <unordered_set>


#include "http/http.hpp"
#include "http/read_buffer.hpp"
#include "http/wire.hpp"

namespace fp::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using net::awaitable;
constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::string_view find_header(const header_list& h, std::string_view name) noexcept {
  for (const auto& [k, v] : h)
    if (iequals(k, name)) return v;
  return {};
}

namespace {
// Re-points a view into `old_base` (of size n) at the same offset of `new_base`; views that point
// elsewhere (e.g. literals a test assigned) stay as they are.
std::string_view rebase(std::string_view v, const char* old_base, size_t n, const char* new_base) {
  if (v.empty() || v.data() < old_base || v.data() + v.size() > old_base + n) return v;
  return std::string_view(new_base + (v.data() - old_base), v.size());
}
}  // namespace

request& request::operator=(const request& o) {
  if (this == &o) return *this;
  head_bytes = o.head_bytes;
  const char* ob = o.head_bytes.data();
  const size_t n = o.head_bytes.size();
  const char* nb = head_bytes.data();
  method = rebase(o.method, ob, n, nb);
  target = rebase(o.target, ob, n, nb);
  headers.resize(o.headers.size());
  for (size_t i = 0; i < o.headers.size(); ++i)
    headers[i] = {rebase(o.headers[i].first, ob, n, nb), rebase(o.headers[i].second, ob, n, nb)};
  body = o.body;
  received_ns = o.received_ns;
  return *this;
}

request& request::operator=(request&& o) noexcept {
  if (this == &o) return *this;
  const char* ob = o.head_bytes.data();
  const size_t n = o.head_bytes.size();
  head_bytes = std::move(o.head_bytes);  // a short string's bytes are copied, not moved: re-point
  const char* nb = head_bytes.data();
  method = rebase(o.method, ob, n, nb);
  target = rebase(o.target, ob, n, nb);
  headers = std::move(o.headers);
  if (nb != ob)
    for (auto& [k, v] : headers) {
      k = rebase(k, ob, n, nb);
      v = rebase(v, ob, n, nb);
    }
  body = std::move(o.body);
  received_ns = o.received_ns;
  o.method = o.target = {};
  o.headers.clear();
  return *this;
}

std::string_view request::header(std::string_view name) const noexcept {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::string_view request::path() const noexcept {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? t : t.substr(0, q);
}

namespace {

// "HTTP/1.1 200 OK\r\n": the common statuses without formatting, the rest through Beast's table.
void append_status_line(std::string& out, int status) {
  switch (status) {
    case 200: out.append("HTTP/1.1 200 OK\r\n"); return;
    case 400: out.append("HTTP/1.1 400 Bad Request\r\n"); return;
    case 404: out.append("HTTP/1.1 404 Not Found\r\n"); return;
    case 429: out.append("HTTP/1.1 429 Too Many Requests\r\n"); return;
    case 500: out.append("HTTP/1.1 500 Internal Server Error\r\n"); return;
    case 502: out.append("HTTP/1.1 502 Bad Gateway\r\n"); return;
    case 504: out.append("HTTP/1.1 504 Gateway Timeout\r\n"); return;
    default: break;
  }
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\n", status, std::string_view(reason.data(), reason.size()));
}

struct session;

struct worker {
  // One thread runs it and only that thread touches its sockets (others only post to it), so the
  // reactor needs no per-socket locking; the scheduler keeps its lock for those posts.
  net::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::optional<tcp::acceptor> acceptor;
  std::unordered_set<session*> sessions;  // touched only on this worker's thread
  std::optional<net::steady_timer> grace_timer;
  bool stopping = false;  // this worker's view (set on its thread)
  // Connection deadlines (idle, read, write) are checked by one coarse sweep per worker instead of
  // a timer re-armed around every read and write (a timerfd_settime syscall each time).
  std::optional<net::steady_timer> sweep_timer;
  std::chrono::milliseconds sweep_tick{1000};
  bool sweep_armed = false;
  void arm_sweep();
  // Starts the client watch of requests that have run for watch_delay (see session::request_watch):
  // the timer is set for the oldest waiting request's due time, so a watch starts watch_delay
  // after its request did (not up to a period later). A tick is a timer wake-up and a
  // timerfd_settime; one every 10 ms doubled the gateway's p99 at c=1 (47 vs 33 us at 50 ms).
  std::optional<net::steady_timer> watch_timer;
  static constexpr std::chrono::milliseconds watch_delay{50};
  bool watch_armed = false;
  void arm_watch(int64_t due_ns);
};

}  // namespace

struct server::impl {
  server_options opts;
  handler& h;
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<bool> stopping{false};
  std::atomic<size_t> active{0};
  uint16_t port = 0;

  impl(server_options o, handler& hh) : opts(std::move(o)), h(hh) {}
  void stop_worker(worker& w);
  awaitable<void> accept_loop(worker& w);
};

namespace {

struct session final : responder, std::enable_shared_from_this<session> {
  using responder::begin_stream;
  using responder::respond;
  server::impl& srv;
  worker& w;
  tcp::socket sock;  // deadlines come from the worker's sweep, not from a per-stream timer
  read_buffer in;  // bytes read from the client and not yet used
  wire::head head_;  // the parsed head (its field vector keeps its capacity)
  request req_;      // reused: its head buffer and field list keep their capacity
  std::string head;  // reused for response heads and chunk framing
  bool idle = true;
  bool gone = false;
  bool started_ = false;
  bool streaming = false;
  bool keep_alive = true;

  std::array<net::const_buffer, 2> rest_;  // respond_now()'s response, for respond_rest()
  size_t rest_written_ = 0;
  int64_t deadline_ns = 0;  // 0: none; the worker's sweep cancels the socket's operations after it
  bool timed_out = false;

  session(server::impl& s, worker& wk, tcp::socket so) : srv(s), w(wk), sock(std::move(so)) {}

  // Returns the time it read (callers reuse it instead of reading the clock again).
  int64_t set_deadline(std::chrono::milliseconds d) {
    timed_out = false;
    const int64_t now = now_ns();
    deadline_ns = now + static_cast<int64_t>(d.count()) * 1000000;
    w.arm_sweep();
    return now;
  }
  void clear_deadline() { deadline_ns = 0; }

  bool client_gone() const noexcept override { return gone; }
  bool started() const noexcept override { return started_; }

  // Writes everything. A write the socket buffer takes at once (nearly all of them) is one
  // non-blocking sendmsg with no timer, no trip through the reactor and no coroutine frame
  // (write_now); only what is left is written asynchronously under the write timeout (write_rest).
  // Returns true when nothing is left to do (all written, or the client is gone).
  template <class Buffers>
  bool write_now(const Buffers& bufs, size_t& written) {
    written = 0;
    if (gone) return true;
    beast::error_code ec;
    size_t total = net::buffer_size(bufs);
    size_t n = sock.write_some(bufs, ec);  // the socket is non-blocking (see run)
    if (!ec && n == total) return true;
    if (ec && ec != net::error::would_block && ec != net::error::try_again) {
      gone = true;
      return true;
    }
    written = ec ? 0 : n;
    return false;
  }
  template <class Buffers>
  awaitable<bool> write_rest(const Buffers& bufs, size_t written) {
    beast::buffers_suffix<Buffers> rest(bufs);
    rest.consume(written);
    set_deadline(srv.opts.write_timeout);
    auto [wec, wn] = co_await net::async_write(sock, rest, use_tuple);
    clear_deadline();
    if (wec) {
      gone = true;
      co_return false;
    }
    co_return true;
  }
  template <class Buffers>
  awaitable<bool> write_all(const Buffers& bufs) {
    size_t n = 0;
    if (write_now(bufs, n)) co_return !gone;
    co_return co_await write_rest(bufs, n);
  }

  void append_head(int status, std::span<const header_view> headers) {
    head.clear();
    append_status_line(head, status);
    for (const auto& [k, v] : headers) {
      head.append(k);
      head.append(": ");
      head.append(v);
      head.append("\r\n");
    }
    if (!keep_alive || srv.stopping.load(std::memory_order_relaxed)) {
      keep_alive = false;
      head.append("Connection: close\r\n");
    }
  }

  awaitable<bool> respond(int status, std::span<const header_view> headers, std::string_view body) override {
    if (started_) co_return false;
    if (respond_now(status, headers, body)) co_return !gone;
    co_return co_await respond_rest();
  }

  bool respond_now(int status, std::span<const header_view> headers, std::string_view body) override {
    if (started_) return true;
    started_ = true;
    append_head(status, headers);
    head.append("Content-Length: ");
    char num[24];
    auto [end, ec] = std::to_chars(num, num + sizeof num, body.size());
    head.append(num, end).append("\r\n\r\n");
    rest_ = {net::buffer(head), net::buffer(body.data(), body.size())};
    rest_written_ = 0;
    return write_now(rest_, rest_written_);
  }
  awaitable<bool> respond_rest() override { return write_rest(rest_, rest_written_); }

  // What follows `head` (already holding a response head, or empty) in one gather write: `piece`
  // as one chunk (its size line appended to head; nothing when empty), then `tail` (the piece's
  // CRLF, and/or the chunked terminator).
  std::array<net::const_buffer, 3> chunk_bufs(std::string_view piece, std::string_view tail) {
    if (!piece.empty()) {
      char num[24];
      auto [end, ec] = std::to_chars(num, num + sizeof num, piece.size(), 16);
      head.append(num, end).append("\r\n");
    }
    return {net::buffer(head), net::buffer(piece.data(), piece.size()), net::buffer(tail.data(), tail.size())};
  }

  awaitable<bool> begin_stream(int status, std::span<const header_view> headers, std::string_view first) override {
    if (started_) co_return false;
    started_ = true;
    streaming = true;
    if (watch_wanted && !watching && !gone) start_watch();  // a stream is watched from its start
    append_head(status, headers);
    head.append("Transfer-Encoding: chunked\r\n\r\n");
    auto bufs = chunk_bufs(first, first.empty() ? std::string_view{} : std::string_view("\r\n"));
    size_t n = 0;
    if (write_now(bufs, n)) co_return !gone;
    co_return co_await write_rest(bufs, n);
  }

  awaitable<bool> respond_stream(int status, std::span<const header_view> headers, std::string_view body,
                                 bool keep) override {
    if (started_) co_return false;
    started_ = true;
    if (!keep) keep_alive = false;
    append_head(status, headers);
    head.append("Transfer-Encoding: chunked\r\n\r\n");
    auto bufs = chunk_bufs(body, body.empty() ? std::string_view("0\r\n\r\n") : std::string_view("\r\n0\r\n\r\n"));
    size_t n = 0;
    if (write_now(bufs, n)) co_return !gone;
    co_return co_await write_rest(bufs, n);
  }

  awaitable<bool> write_chunk(std::string_view data) override {
    if (!streaming) co_return false;
    if (data.empty()) co_return !gone;  // an empty chunk would end the stream
    head.clear();
    auto bufs = chunk_bufs(data, "\r\n");
    size_t n = 0;
    if (write_now(bufs, n)) co_return !gone;
    co_return co_await write_rest(bufs, n);
  }

  awaitable<bool> end_stream(bool keep, std::string_view last) override {
    if (!streaming) co_return false;
    streaming = false;
    if (!keep) keep_alive = false;
    head.clear();
    auto bufs = chunk_bufs(last, last.empty() ? std::string_view("0\r\n\r\n") : std::string_view("\r\n0\r\n\r\n"));
    size_t n = 0;
    if (write_now(bufs, n)) co_return !gone;
    co_return co_await write_rest(bufs, n);
  }

  // Watching the client while a response is produced, without a second coroutine: one
  // asynchronous 1-byte MSG_PEEK receive, left queued on the reactor (which already polls the
  // socket). It completes with EOF or an error when the client went away, or with one byte when
  // the client pipelined its next request (the bytes stay in the kernel for the next read). A
  // client that is gone cancels the handler's pending operation through the session coroutine's
  // cancellation slot.
  // The watch starts lazily: at once for a stream (begin_stream), else from the worker's watch
  // timer once the request has run for watch_delay (50 ms). asio tries the receive at once (an EAGAIN
  // syscall) and stopping it posts a completion, so a request answered sooner (nearly all
  // non-streaming ones through a fast upstream) costs no watch at all.
  net::cancellation_signal cancel_sig;  // bound to this session's coroutine (see accept_loop)
  uint64_t watch_gen = 0;               // tells a stale completion from the current watch
  bool watching = false;
  bool watch_wanted = false;   // the handler asked for a watch (see request_watch)
  int64_t watch_since_ns = 0;  // when it asked
  char peek_byte = 0;

  void client_went_away() {
    if (gone) return;
    gone = true;
    cancel_sig.emit(net::cancellation_type::terminal);
  }

  void start_watch() {
    watching = true;
    uint64_t gen = ++watch_gen;
    sock.async_receive(
        net::buffer(&peek_byte, 1), tcp::socket::message_peek,
        [self = shared_from_this(), gen](beast::error_code ec, size_t n) {
          if (gen != self->watch_gen) return;  // stop_watch ran (or a later watch owns the socket)
          self->watching = false;
          if (ec == net::error::operation_aborted) return;
          if (ec || n == 0) self->client_went_away();  // EOF, reset
          // else: pipelined bytes; the client is there and they are read after this response
        });
  }

  void stop_watch() {
    if (!watching) return;
    watching = false;
    ++watch_gen;
    beast::error_code ig;
    sock.cancel(ig);  // only the peek is pending here; no syscall
  }

  void request_watch() {
    if (gone || watch_wanted) return;
    watch_wanted = true;
    watch_since_ns = req_.received_ns;  // (no second clock read: the request is the one being answered)
    if (streaming) {
      start_watch();
    } else {
      w.arm_watch(watch_since_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(worker::watch_delay).count());
    }
  }
  void end_watch() {
    watch_wanted = false;
    stop_watch();
  }

  void watch_client() override { request_watch(); }
  bool unwatch_client() override {
    end_watch();
    return !gone;
  }

  awaitable<void> send_simple_error(int status, std::string_view type, std::string_view msg) {
    keep_alive = false;
    std::string body = fmt::format(R"({{"error":{{"message":"{}","type":"{}","param":null,"code":null}}}})",
                                   msg, type);
    header_list h;
    h.emplace_back("Content-Type", "application/json");
    co_await respond(status, h, body);
  }

  size_t buffered() const noexcept { return in.size(); }
  bool make_room(size_t limit) { return in.make_room(limit); }

  // One read into the buffer's free space (grown up to `limit`). The read of each new request in
  // run() is written out there instead (one coroutine frame fewer per request).
  awaitable<boost::system::error_code> read_more(size_t limit) {
    if (!make_room(limit)) co_return boost::system::error_code(net::error::no_buffer_space);
    auto [ec, n] = co_await sock.async_read_some(net::buffer(in.space(), in.space_size()), use_tuple);
    co_return read_done(ec, n);
  }
  boost::system::error_code read_done(boost::system::error_code ec, size_t n) {
    if (!ec && n == 0) ec = net::error::eof;
    if (!ec) in.end += n;
    return ec;
  }

  // The body when all of it is already buffered (the common case): no coroutine needed.
  bool body_from_buffer() {
    if (head_.body == wire::body_kind::none) {
      req_.body.clear();
      return true;
    }
    if (head_.body != wire::body_kind::length || head_.content_length > srv.opts.max_body_bytes ||
        head_.content_length > buffered())
      return false;
    const size_t want = static_cast<size_t>(head_.content_length);
    req_.body.assign(in.data(), want);
    in.begin += want;
    return true;
  }

  // Reads the body of `head_` into req_.body. Errors: status to answer with (0: just close).
  struct body_error {
    int status = 0;
    std::string message;
  };
  awaitable<std::optional<body_error>> read_body() {
    const auto& o = srv.opts;
    std::string& body = req_.body;
    body.clear();
    if (head_.body == wire::body_kind::none) co_return std::nullopt;
    if (head_.expect_continue && buffered() == 0) {
      // curl and others wait (up to 1 s) for "100 Continue" before sending a larger body.
      if (head_.body != wire::body_kind::length || head_.content_length <= o.max_body_bytes)
        if (!co_await write_all(net::buffer("HTTP/1.1 100 Continue\r\n\r\n", 25)))
          co_return body_error{};
    }
    if (head_.body == wire::body_kind::length) {
      if (head_.content_length > o.max_body_bytes)
        co_return body_error{413, fmt::format("request body larger than {} bytes", o.max_body_bytes)};
      const size_t want = static_cast<size_t>(head_.content_length);
      const size_t have = std::min(want, buffered());
      body.assign(in.data(), have);
      in.begin += have;
      if (have < want) {
        body.resize(want);
        size_t got = have;
        while (got < want) {  // the rest straight into the body
          auto [ec, n] = co_await sock.async_read_some(net::buffer(body.data() + got, want - got), use_tuple);
          if (ec || n == 0) co_return body_error{};
          got += n;
        }
      }
      co_return std::nullopt;
    }
    // chunked
    wire::chunked_decoder dec;
    for (;;) {
      if (buffered() > 0) {
        size_t room = o.max_body_bytes + 1 - body.size();
        size_t old = body.size();
        body.resize(old + std::min(buffered(), room));
        auto st = dec.decode(in.data(), buffered(), body.data() + old, body.size() - old);
        body.resize(old + st.produced);
        in.begin += st.consumed;
        if (st.error) co_return body_error{400, "malformed HTTP request: bad chunked body"};
        if (body.size() > o.max_body_bytes)
          co_return body_error{413, fmt::format("request body larger than {} bytes", o.max_body_bytes)};
        if (st.done) co_return std::nullopt;
        if (st.consumed > 0 && buffered() > 0) continue;
      }
      auto ec = co_await read_more(std::max<size_t>(in.cap, 8192));
      if (ec) co_return body_error{};
    }
  }

  awaitable<void> run() {
    // A client that goes away cancels the awaited operation (see watch_client); awaits
    // then report operation_aborted instead of throwing (no exceptions on the data plane).
    co_await net::this_coro::throw_if_cancelled(false);
    beast::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    sock.non_blocking(true, ignored);  // write_all tries a direct write first
    const auto& o = srv.opts;
    const size_t head_limit = o.max_header_bytes;
    for (;;) {
      if (srv.stopping.load(std::memory_order_relaxed) && buffered() == 0) break;
      idle = true;
      if (buffered() == 0) {
        set_deadline(o.idle_timeout);
        if (!make_room(std::max<size_t>(head_limit, 8192))) break;
        auto [ec, n] = co_await sock.async_read_some(net::buffer(in.space(), in.space_size()), use_tuple);
        if (read_done(ec, n)) break;
      }
      idle = false;
      // The request's received time: this read's, unless the head or body needs more reads.
      int64_t received = set_deadline(o.read_timeout);
      wire::head_scan scan;
      wire::parse_result pr;
      bool closed = false;
      for (;;) {
        pr = wire::parse_request_head(in.view(), head_, scan, head_limit);
        if (pr.status != wire::parse::need_more) break;
        if (co_await read_more(std::max<size_t>(head_limit, 8192))) {
          closed = true;
          break;
        }
        received = 0;
      }
      if (closed) break;
      if (pr.status == wire::parse::too_large) {
        co_await send_simple_error(431, "invalid_request_error",
                                   fmt::format("request head larger than {} bytes", o.max_header_bytes));
        break;
      }
      if (pr.status == wire::parse::unsupported) {
        co_await send_simple_error(501, "invalid_request_error", fmt::format("malformed HTTP request: {}", pr.what));
        break;
      }
      if (pr.status != wire::parse::done) {
        co_await send_simple_error(400, "invalid_request_error", fmt::format("malformed HTTP request: {}", pr.what));
        break;
      }
      // The head moves into the request (views re-pointed at its copy); the buffer goes on.
      request& req = req_;
      const char* base = in.data();
      req.head_bytes.assign(base, head_.size);
      const char* nb = req.head_bytes.data();
      auto re = [&](std::string_view v) { return std::string_view(nb + (v.data() - base), v.size()); };
      req.method = re(head_.method);
      req.target = re(head_.target);
      req.headers.clear();
      for (const auto& f : head_.fields) req.headers.emplace_back(re(f.name), re(f.value));
      in.begin += head_.size;
      if (!body_from_buffer()) {
        if (auto be = co_await read_body()) {
          if (be->status != 0) co_await send_simple_error(be->status, "invalid_request_error", be->message);
          break;
        }
        received = 0;
      }
      clear_deadline();
      req.received_ns = received != 0 ? received : now_ns();
      keep_alive = head_.keep_alive && !srv.stopping.load(std::memory_order_relaxed);
      started_ = false;
      streaming = false;
      try {
        co_await srv.h.handle(req, *this);
      } catch (const std::exception& e) {
        end_watch();
        // (code that turned throw_if_cancelled back on throws once a departed client cancelled it)
        if (!gone) log(log_level::error, "http", fmt::format("handler failed: {}", e.what()));
        keep_alive = false;
      }
      end_watch();  // a handler that returned while watching
      // (not after the client went away: the session is cancelled then, and awaiting a nested
      // coroutine would throw out of run(), leaving a dangling session in w.sessions)
      if (!started_ && !gone) co_await send_simple_error(500, "server_error", "handler sent no response");
      if (streaming) keep_alive = false;  // the handler did not end its stream
      if (gone || !keep_alive) break;
    }
    sock.shutdown(tcp::socket::shutdown_send, ignored);
    sock.close(ignored);
  }
};

void worker::arm_watch(int64_t due_ns) {
  if (watch_armed) return;  // armed for an older request: due no later than this one
  watch_armed = true;
  if (!watch_timer) watch_timer.emplace(ioc);
  watch_timer->expires_at(std::chrono::steady_clock::time_point(std::chrono::nanoseconds(due_ns)));
  watch_timer->async_wait([this](beast::error_code ec) {
    watch_armed = false;
    if (ec) return;
    const int64_t delay = std::chrono::duration_cast<std::chrono::nanoseconds>(watch_delay).count();
    const int64_t now = now_ns();
    int64_t next = 0;  // the oldest still waiting request's due time
    for (session* s : sessions) {
      if (!s->watch_wanted || s->watching || s->gone) continue;
      if (s->watch_since_ns + delay <= now) {
        s->start_watch();
      } else if (next == 0 || s->watch_since_ns + delay < next) {
        next = s->watch_since_ns + delay;
      }
    }
    if (next != 0) arm_watch(next);
  });
}

void worker::arm_sweep() {
  if (sweep_armed) return;
  sweep_armed = true;
  if (!sweep_timer) sweep_timer.emplace(ioc);
  sweep_timer->expires_after(sweep_tick);
  sweep_timer->async_wait([this](beast::error_code ec) {
    sweep_armed = false;
    if (ec) return;
    const int64_t now = now_ns();
    bool pending = false;
    for (session* s : sessions) {
      if (s->deadline_ns == 0) continue;
      if (now >= s->deadline_ns) {
        s->deadline_ns = 0;
        s->timed_out = true;
        beast::error_code ig;
        s->sock.cancel(ig);  // the awaited read or write ends with operation_aborted
      } else {
        pending = true;
      }
    }
    if (pending) arm_sweep();
  });
}

}  // namespace

void server::impl::stop_worker(worker& w) {
  if (w.stopping) return;
  w.stopping = true;
  beast::error_code ignored;
  if (w.acceptor) w.acceptor->close(ignored);
  for (session* s : w.sessions)
    if (s->idle) s->sock.cancel(ignored);
  if (w.sessions.empty()) {
    if (w.sweep_timer) w.sweep_timer->cancel();
    if (w.watch_timer) w.watch_timer->cancel();
    return;
  }
  w.grace_timer.emplace(w.ioc);
  w.grace_timer->expires_after(opts.shutdown_grace);
  w.grace_timer->async_wait([&w](beast::error_code ec) {
    if (ec) return;
    beast::error_code ig;
    for (session* s : w.sessions) s->sock.close(ig);
  });
}

awaitable<void> server::impl::accept_loop(worker& w) {
  for (;;) {
    auto [ec, sock] = co_await w.acceptor->async_accept(use_tuple);
    if (ec) {
      if (w.stopping || ec == net::error::operation_aborted || !w.acceptor->is_open()) break;
      static std::atomic<bool> once{false};
      log_once(once, log_level::warn, "http", fmt::format("accept failed: {}", ec.message()));
      net::steady_timer t(w.ioc, std::chrono::milliseconds(10));  // e.g. EMFILE: back off
      co_await t.async_wait(use_tuple);
      continue;
    }
    auto s = std::make_shared<session>(*this, w, std::move(sock));
    w.sessions.insert(s.get());
    active.fetch_add(1, std::memory_order_relaxed);
    // The slot lets a client that went away cancel whatever the handler awaits at that moment.
    net::co_spawn(w.ioc, [s, this, &w]() -> awaitable<void> {
      try {
        co_await s->run();
      } catch (const std::exception& e) {  // never leak the session (stop() waits for it)
        log(log_level::error, "http", fmt::format("connection failed: {}", e.what()));
        beast::error_code ig;
        s->sock.close(ig);
      }
      w.sessions.erase(s.get());
      active.fetch_sub(1, std::memory_order_relaxed);
      if (w.stopping && w.sessions.empty()) {
        if (w.grace_timer) w.grace_timer->cancel();
        if (w.sweep_timer) w.sweep_timer->cancel();  // or run() would wait for its next tick
        if (w.watch_timer) w.watch_timer->cancel();
      }
    }, net::bind_cancellation_slot(s->cancel_sig.slot(), net::detached));
  }
}

server::server(server_options opts, handler& h) : impl_(std::make_unique<impl>(std::move(opts), h)) {}
server::~server() = default;

result<void> server::listen() {
  auto& o = impl_->opts;
  beast::error_code ec;
  std::string host = o.host == "localhost" ? "127.0.0.1" : o.host;
  auto addr = net::ip::make_address(host, ec);
  if (ec) return make_error(errc::invalid_request, fmt::format("server.host: '{}' is not an IP address", o.host));
  int n = o.threads > 0 ? o.threads : 1;
  uint16_t port = o.port;
  // Deadlines fire up to one sweep tick late: an eighth of the shortest timeout, 5 ms to 1 s.
  auto shortest = std::min({o.idle_timeout, o.read_timeout, o.write_timeout});
  auto tick = std::clamp(shortest / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(1000));
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<worker>();
    w->sweep_tick = tick;
    auto& a = w->acceptor.emplace(w->ioc);
    tcp::endpoint ep(addr, port);
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) {
      using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
      a.set_option(reuse_port(true), ec);
    }
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      return make_error(errc::io_error, fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
    if (i == 0) port = a.local_endpoint().port();
    impl_->workers.push_back(std::move(w));
  }
  impl_->port = port;
  return {};
}

uint16_t server::port() const noexcept { return impl_->port; }
size_t server::active_connections() const noexcept { return impl_->active.load(); }

void server::run() {
  auto& ws = impl_->workers;
  for (auto& w : ws) net::co_spawn(w->ioc, impl_->accept_loop(*w), net::detached);
  std::vector<std::thread> threads;
  for (size_t i = 1; i < ws.size(); ++i) threads.emplace_back([&w = *ws[i]] { w.ioc.run(); });
  if (!ws.empty()) ws[0]->ioc.run();
  for (auto& t : threads) t.join();
}

void server::stop() {
  impl_->stopping.store(true);
  for (auto& w : impl_->workers)
    net::post(w->ioc, [this, wp = w.get()] { impl_->stop_worker(*wp); });
}

}  // namespace fp::http
