// Public header of src/http (fp_http): the HTTP/1.1 server the gateway listens with and the
// upstream client providers call hosted APIs with. Beast and Asio stay behind this header (only
// the light awaitable type is exposed), so including it is cheap.
//
// Server: thread-per-core. N threads, each with its own io_context and its own acceptor bound to
// the same port with SO_REUSEPORT; one coroutine per connection; keep-alive; header/body limits;
// read and idle timeouts; graceful stop that lets running responses finish up to a deadline.
//
// Client: a bounded keep-alive connection pool per upstream and per thread, TLS verified against
// the system store (SNI set), cached DNS, and deadlines for connect, first byte, gap between body
// pieces and total. Every network wait has a deadline and honours asio per-operation cancellation.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/common.hpp"

namespace fp::http {

using header_list = std::vector<std::pair<std::string, std::string>>;
// A header as views (the caller keeps the bytes alive for the call it passes them to).
using header_view = std::pair<std::string_view, std::string_view>;

// Case-insensitive header lookup; "" when absent.
std::string_view find_header(const header_list& h, std::string_view name) noexcept;

// ---- server -------------------------------------------------------------------------------------

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see server::port())
  int threads = 1;
  size_t max_header_bytes = 16 * 1024;        // larger request head -> 431
  size_t max_body_bytes = 4 * 1024 * 1024;    // larger body -> 413
  std::chrono::milliseconds read_timeout{30000};   // to receive one whole request once it started
  std::chrono::milliseconds idle_timeout{60000};   // keep-alive connection idle between requests
  std::chrono::milliseconds write_timeout{30000};  // one write to a client that does not read
  std::chrono::milliseconds shutdown_grace{10000};  // running responses may finish within this
};

// One complete request as read from a client. The request line and header fields are views into
// `head_bytes` (the raw head, kept by the request; copies and moves re-point the views), so
// reading a request allocates nothing once a connection's buffers have grown.
struct request {
  using field_list = std::vector<std::pair<std::string_view, std::string_view>>;
  std::string_view method;
  std::string_view target;  // path and query as sent
  field_list headers;       // as sent (names in their original case)
  std::string body;
  int64_t received_ns = 0;  // monotonic time the request head was complete
  std::string head_bytes;   // what the views above point into

  request() = default;
  request(const request& o) { *this = o; }
  request(request&& o) noexcept { *this = std::move(o); }
  request& operator=(const request& o);
  request& operator=(request&& o) noexcept;

  std::string_view header(std::string_view name) const noexcept;  // case-insensitive; "" when absent
  std::string_view path() const noexcept;  // target without the query
};

// How a handler answers. Either one respond(), or begin_stream() + write_chunk()* + end_stream().
// Every call returns false when the client is gone (the handler should then stop at once).
class responder {
 public:
  virtual ~responder() = default;
  // A complete response with Content-Length.
  virtual boost::asio::awaitable<bool> respond(int status, std::span<const header_view> headers,
                                               std::string_view body) = 0;
  boost::asio::awaitable<bool> respond(int status, const header_list& headers, std::string_view body) {
    return respond(status, std::span<const header_view>(views_of(headers)), body);
  }
  // The same without a coroutine when the socket takes the whole response at once (the common
  // case): true when nothing is left to do (written, or the client is gone); false: co_await
  // respond_rest() for the remainder, with `body` still valid. The headers are used up on return.
  virtual bool respond_now(int status, std::span<const header_view> headers, std::string_view body) = 0;
  virtual boost::asio::awaitable<bool> respond_rest() = 0;
  // Sends the head of a streamed (chunked) response, with `first` (e.g. the first SSE events) as
  // its first piece in the same write when not empty. Headers should include Content-Type.
  virtual boost::asio::awaitable<bool> begin_stream(int status, std::span<const header_view> headers,
                                                    std::string_view first = {}) = 0;
  boost::asio::awaitable<bool> begin_stream(int status, const header_list& headers, std::string_view first = {}) {
    return begin_stream(status, std::span<const header_view>(views_of(headers)), first);
  }
  // A whole streamed (chunked) response in one write: head, `body` as its one piece, terminator
  // (for a stream whose answer exists all at once). keep_alive as for end_stream.
  virtual boost::asio::awaitable<bool> respond_stream(int status, std::span<const header_view> headers,
                                                      std::string_view body, bool keep_alive = true) = 0;
  // Sends one piece (e.g. one SSE event) and flushes it to the socket before returning.
  virtual boost::asio::awaitable<bool> write_chunk(std::string_view data) = 0;
  // Ends the stream, with `last` as its final piece in the same write when not empty.
  // keep_alive=false closes the connection afterwards.
  virtual boost::asio::awaitable<bool> end_stream(bool keep_alive = true, std::string_view last = {}) = 0;
  virtual bool client_gone() const noexcept = 0;
  virtual bool started() const noexcept = 0;  // whether a response head has been sent
  // Watching the client while the handler works: watch_client() before the work, unwatch_client()
  // after it (false: the client went away meanwhile and the work was cancelled; respond no
  // further). While watching, a client that disconnects cancels whatever the handler awaits at
  // that moment through the session's cancellation slot (awaits report operation_aborted).
  virtual void watch_client() = 0;
  virtual bool unwatch_client() = 0;

 private:
  // The owning-list overloads' views (asio awaitables start when awaited, after they return).
  std::vector<header_view> view_storage_;
  const std::vector<header_view>& views_of(const header_list& h) {
    view_storage_.assign(h.begin(), h.end());
    return view_storage_;
  }
};

class handler {
 public:
  virtual ~handler() = default;
  virtual boost::asio::awaitable<void> handle(request& req, responder& res) = 0;
};

class server {
 public:
  server(server_options opts, handler& h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds the acceptors (one per thread). Errors name the address.
  result<void> listen();
  uint16_t port() const noexcept;  // the bound port (after listen)
  // Runs all worker threads; returns when stopped and drained (the calling thread is worker 0).
  void run();
  // Graceful stop, callable from any thread or a signal handler context: stop accepting, close
  // idle connections, let running responses finish up to shutdown_grace, then close the rest.
  void stop();
  size_t active_connections() const noexcept;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

// ---- client -------------------------------------------------------------------------------------

struct url_parts {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
  std::string base_path;  // without a trailing '/', e.g. "/v1"
};
// http://host[:port][/path] or https://...; errors name what is wrong.
result<url_parts> parse_base_url(std::string_view url);

struct client_timeouts {
  std::chrono::milliseconds connect{5000};      // TCP connect + TLS handshake
  std::chrono::milliseconds first_byte{60000};  // request sent -> response head
  std::chrono::milliseconds chunk_gap{30000};   // between two pieces of the body
  std::chrono::milliseconds total{600000};      // the whole exchange
};

struct client_request {
  std::string method = "POST";
  std::string target;  // full path, e.g. "/v1/chat/completions"
  header_list headers;  // Host, Content-Length, Connection are set by the client
  std::string body;
};

// The same as views, for callers that keep the bytes alive until send() completes (no copy).
struct client_request_view {
  std::string_view method = "POST";
  std::string_view target;
  std::span<const header_view> headers;
  std::string_view body;
};

class upstream;

// An exchange in flight: the status and headers are known, the body is read piece by piece.
class client_response {
 public:
  ~client_response();
  int status() const noexcept;
  std::string_view header(std::string_view name) const noexcept;
  int64_t ttfb_ns() const noexcept;  // request written -> response head read
  // The next piece of the body (decoded from chunked if needed), as soon as it arrives. An empty
  // view means the body is complete. Errors: upstream_timeout (gap or total), upstream_error.
  boost::asio::awaitable<result<std::string_view>> read_some();
  // Reads the rest of the body (at most limit bytes).
  boost::asio::awaitable<result<std::string>> read_all(size_t limit = 64 << 20);
  // read_all without waiting: the whole body when it has already arrived (the common case for a
  // small response), nullopt when it would need to read (then use read_all).
  std::optional<result<std::string>> try_read_all(size_t limit = 64 << 20);

  struct impl;
  explicit client_response(std::unique_ptr<impl> p);

 private:
  std::unique_ptr<impl> impl_;
};

struct upstream_options {
  size_t max_connections_per_thread = 64;  // pooled + in use, per worker thread
  size_t max_idle_per_thread = 16;
  std::chrono::seconds dns_ttl{60};
  bool verify_tls = true;  // certificate + host name against the system trust store
};

// One upstream origin (scheme, host, port). Thread-safe; connections are pooled per thread (per
// io_context) so the data plane shares nothing between threads.
class upstream {
 public:
  upstream(url_parts where, upstream_options opts = {});
  ~upstream();
  const url_parts& where() const noexcept;

  // Sends the request and reads the response head. A reused keep-alive connection that turns out
  // dead is replaced once, transparently. Errors: upstream_unreachable (DNS/connect/TLS),
  // upstream_timeout, cancelled.
  boost::asio::awaitable<result<std::unique_ptr<client_response>>> send(client_request req,
                                                                        client_timeouts t);
  // `req`'s views must stay valid until this completes.
  boost::asio::awaitable<result<std::unique_ptr<client_response>>> send(const client_request_view& req,
                                                                        client_timeouts t);

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace fp::http
