// fp_redis implementation: connections on one private io_context thread, pipelined commands,
// deadlines, reconnect with fail-fast backoff. See redis.hpp.
#include "redis/redis.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

namespace fp::redis {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// ---- RESP ---------------------------------------------------------------------------------------

namespace {
reply convert(const redisReply* r, int depth) {
  reply out;
  if (!r) return out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = reply::kind::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = reply::kind::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = reply::kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = reply::kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = reply::kind::array;
      if (depth < 64) {
        out.elements.reserve(r->elements);
        for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i], depth + 1));
      }
      break;
    default:
      out.type = reply::kind::nil;
  }
  return out;
}
}  // namespace

resp_parser::resp_parser() : reader_(redisReaderCreate()) {}
resp_parser::~resp_parser() { redisReaderFree(static_cast<redisReader*>(reader_)); }

bool resp_parser::feed(std::string_view bytes) {
  if (failed_ || !reader_) return false;
  if (bytes.empty()) return true;
  if (redisReaderFeed(static_cast<redisReader*>(reader_), bytes.data(), bytes.size()) != REDIS_OK) {
    failed_ = true;
    return false;
  }
  return true;
}

int resp_parser::next(reply& out) {
  if (failed_ || !reader_) return -1;
  void* r = nullptr;
  if (redisReaderGetReply(static_cast<redisReader*>(reader_), &r) != REDIS_OK) {
    failed_ = true;
    return -1;
  }
  if (!r) return 0;
  out = convert(static_cast<redisReply*>(r), 0);
  freeReplyObject(r);
  return 1;
}

void append_command(std::string& out, const std::vector<std::string>& args) {
  char num[32];
  auto put_len = [&](char prefix, size_t n) {
    out.push_back(prefix);
    auto [p, ec] = std::to_chars(num, num + sizeof num, n);
    out.append(num, p);
    out.append("\r\n");
  };
  put_len('*', args.size());
  for (const auto& a : args) {
    put_len('$', a.size());
    out.append(a);
    out.append("\r\n");
  }
}

std::string script_sha1(std::string_view script) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(script.data()), script.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : d) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 15]);
  }
  return s;
}

result<void> parse_url(std::string_view url, config& cfg) {
  auto bad = [&] { return make_error(errc::invalid_request, "redis url: expected redis://[:password@]host[:port][/db] or unix:///path"); };
  if (url.starts_with("unix://")) {
    cfg.unix_socket = std::string(url.substr(7));
    if (cfg.unix_socket.empty()) return bad();
    return {};
  }
  if (!url.starts_with("redis://")) return bad();
  url.remove_prefix(8);
  if (auto at = url.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = url.substr(0, at);
    if (auto colon = cred.find(':'); colon != std::string_view::npos) cred = cred.substr(colon + 1);
    cfg.password = std::string(cred);
    url = url.substr(at + 1);
  }
  if (auto slash = url.find('/'); slash != std::string_view::npos) {
    std::string_view db = url.substr(slash + 1);
    url = url.substr(0, slash);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), cfg.db);
      if (ec != std::errc() || p != db.data() + db.size()) return bad();
    }
  }
  if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = url.substr(colon + 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) return bad();
    cfg.port = static_cast<uint16_t>(v);
    url = url.substr(0, colon);
  }
  if (url.empty()) return bad();
  cfg.host = std::string(url);
  return {};
}

// ---- connections --------------------------------------------------------------------------------

namespace {

struct pending_op {
  explicit pending_op(asio::any_io_executor ex, size_t n) : expected(n), timer(ex) {}
  size_t expected;
  std::vector<reply> replies;
  bool done = false;
  std::optional<error> err;
  asio::steady_timer timer;
};

}  // namespace

struct client::impl : std::enable_shared_from_this<client::impl> {
  struct connection {
    explicit connection(asio::io_context& ioc) : connect_wait(ioc) {}
    enum class state { disconnected, connecting, connected } st = state::disconnected;
    std::optional<asio::generic::stream_protocol::socket> sock;
    uint64_t generation = 0;
    int64_t retry_after_ns = 0;
    std::string outbuf;
    bool writing = false;
    std::deque<std::shared_ptr<pending_op>> inflight;
    std::unique_ptr<resp_parser> parser;
    asio::steady_timer connect_wait;
  };

  explicit impl(config c) : cfg(std::move(c)), guard(asio::make_work_guard(ioc)) {
    if (cfg.pool_size == 0) cfg.pool_size = 1;
    for (size_t i = 0; i < cfg.pool_size; ++i) conns.push_back(std::make_unique<connection>(ioc));
  }

  config cfg;
  asio::io_context ioc{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::thread thread;
  std::vector<std::unique_ptr<connection>> conns;
  std::atomic<size_t> rr{0};
  std::atomic<uint64_t> n_commands{0}, n_errors{0}, n_timeouts{0}, n_reconnects{0};
  std::atomic<bool> stopping{false};

  void fail_connection(connection& c, uint64_t gen, const error& e) {
    if (gen != c.generation) return;
    ++c.generation;
    if (c.sock) {
      boost::system::error_code ec;
      c.sock->close(ec);
    }
    c.sock.reset();
    c.st = connection::state::disconnected;
    c.retry_after_ns = now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(cfg.reconnect_backoff).count();
    c.outbuf.clear();
    c.parser.reset();
    auto ops = std::move(c.inflight);
    c.inflight.clear();
    for (auto& op : ops) {
      op->done = true;
      op->err = e;
      op->timer.cancel();
    }
    c.connect_wait.cancel();
  }

  awaitable<void> reader(connection& c, uint64_t gen) {
    auto self = shared_from_this();
    std::string buf(16 * 1024, '\0');
    while (gen == c.generation && c.sock) {
      auto [ec, n] = co_await c.sock->async_read_some(asio::buffer(buf), use_tuple);
      if (gen != c.generation) co_return;
      if (ec) {
        fail_connection(c, gen, make_error(errc::io_error, "redis: connection lost: " + ec.message()));
        co_return;
      }
      if (!c.parser->feed(std::string_view(buf.data(), n))) {
        fail_connection(c, gen, make_error(errc::corrupt_data, "redis: malformed reply"));
        co_return;
      }
      for (;;) {
        reply r;
        int got = c.parser->next(r);
        if (got < 0) {
          fail_connection(c, gen, make_error(errc::corrupt_data, "redis: malformed reply"));
          co_return;
        }
        if (got == 0) break;
        if (c.inflight.empty()) {
          fail_connection(c, gen, make_error(errc::corrupt_data, "redis: unexpected reply"));
          co_return;
        }
        auto& op = c.inflight.front();
        op->replies.push_back(std::move(r));
        if (op->replies.size() == op->expected) {
          op->done = true;
          op->timer.cancel();
          c.inflight.pop_front();
        }
      }
    }
  }

  awaitable<void> writer(connection& c, uint64_t gen) {
    auto self = shared_from_this();
    c.writing = true;
    std::string out;
    while (gen == c.generation && !c.outbuf.empty() && c.sock) {
      out.clear();
      out.swap(c.outbuf);
      auto [ec, n] = co_await asio::async_write(*c.sock, asio::buffer(out), use_tuple);
      if (gen != c.generation) break;
      if (ec) {
        c.writing = false;
        fail_connection(c, gen, make_error(errc::io_error, "redis: write failed: " + ec.message()));
        co_return;
      }
    }
    if (gen == c.generation) c.writing = false;
  }

  // Sends bytes carrying `n` replies; waits for them (or the deadline).
  awaitable<result<std::vector<reply>>> roundtrip(connection& c, std::string bytes, size_t n) {
    auto op = std::make_shared<pending_op>(ioc.get_executor(), n);
    uint64_t gen = c.generation;
    c.outbuf.append(bytes);
    c.inflight.push_back(op);
    if (!c.writing) asio::co_spawn(ioc, writer(c, gen), asio::detached);
    op->timer.expires_after(cfg.command_timeout);
    while (!op->done) {
      auto [ec] = co_await op->timer.async_wait(use_tuple);
      if (!ec && !op->done) {
        ++n_timeouts;
        fail_connection(c, gen, make_error(errc::upstream_timeout, "redis: command timed out"));
      }
    }
    if (op->err) co_return *op->err;
    co_return std::move(op->replies);
  }

  awaitable<result<void>> ensure_connected(connection& c) {
    for (int round = 0; round < 3; ++round) {
      if (stopping) co_return make_error(errc::io_error, "redis: client stopped");
      if (c.st == connection::state::connected) co_return result<void>{};
      if (c.st == connection::state::connecting) {
        c.connect_wait.expires_after(cfg.connect_timeout + cfg.command_timeout);
        co_await c.connect_wait.async_wait(use_tuple);
        if (c.st == connection::state::connected) co_return result<void>{};
        if (c.st == connection::state::disconnected) co_return make_error(errc::io_error, "redis: not connected");
        continue;
      }
      if (now_ns() < c.retry_after_ns) co_return make_error(errc::io_error, "redis: unavailable (backoff)");
      c.st = connection::state::connecting;
      uint64_t gen = ++c.generation;
      auto r = co_await connect(c, gen);
      if (gen != c.generation) co_return make_error(errc::io_error, "redis: connect interrupted");
      if (!r) {
        ++n_errors;
        fail_connection(c, gen, r.error());
        co_return r.error();
      }
      c.st = connection::state::connected;
      ++n_reconnects;
      c.connect_wait.cancel();
      co_return result<void>{};
    }
    co_return make_error(errc::io_error, "redis: not connected");
  }

  awaitable<result<void>> connect(connection& c, uint64_t gen) {
    auto self = shared_from_this();
    c.sock.emplace(ioc);
    c.parser = std::make_unique<resp_parser>();
    c.outbuf.clear();
    c.writing = false;
    asio::steady_timer deadline(ioc);
    deadline.expires_after(cfg.connect_timeout);
    auto timed_out_flag = std::make_shared<bool>(false);
    deadline.async_wait([&c, gen, timed_out_flag](boost::system::error_code ec) {
      if (!ec && c.generation == gen && c.sock) {
        *timed_out_flag = true;
        boost::system::error_code ignore;
        c.sock->close(ignore);
      }
    });
    boost::system::error_code ec;
    if (!cfg.unix_socket.empty()) {
      asio::local::stream_protocol::endpoint ep(cfg.unix_socket);
      std::tie(ec) = co_await c.sock->async_connect(asio::generic::stream_protocol::endpoint(ep), use_tuple);
    } else {
      boost::system::error_code aec;
      auto addr = asio::ip::make_address(cfg.host == "localhost" ? "127.0.0.1" : cfg.host, aec);
      if (aec) {
        deadline.cancel();
        co_return make_error(errc::invalid_request, "redis: host must be an IP address");
      }
      asio::ip::tcp::endpoint ep(addr, cfg.port);
      std::tie(ec) = co_await c.sock->async_connect(asio::generic::stream_protocol::endpoint(ep), use_tuple);
      if (!ec) {
        int one = 1;
        ::setsockopt(c.sock->native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      }
    }
    deadline.cancel();
    bool timed_out = *timed_out_flag;
    if (gen != c.generation) co_return make_error(errc::io_error, "redis: connect interrupted");
    if (ec || timed_out) {
      co_return make_error(timed_out ? errc::upstream_timeout : errc::io_error,
                           timed_out ? "redis: connect timed out" : "redis: connect failed: " + ec.message());
    }
    asio::co_spawn(ioc, reader(c, gen), asio::detached);
    std::string hello;
    size_t n = 0;
    if (!cfg.password.empty()) {
      append_command(hello, {"AUTH", cfg.password});
      ++n;
    }
    if (cfg.db != 0) {
      append_command(hello, {"SELECT", std::to_string(cfg.db)});
      ++n;
    }
    if (n) {
      auto r = co_await roundtrip(c, std::move(hello), n);
      if (!r) co_return r.error();
      for (auto& rep : *r)
        if (rep.is_error()) co_return make_error(errc::unauthorized, "redis: AUTH/SELECT refused");
    }
    co_return result<void>{};
  }

  awaitable<result<std::vector<reply>>> run(std::string bytes, size_t n) {
    auto self = shared_from_this();
    n_commands += n;
    connection& c = *conns[rr.fetch_add(1, std::memory_order_relaxed) % conns.size()];
    auto ok = co_await ensure_connected(c);
    if (!ok) co_return ok.error();
    auto r = co_await roundtrip(c, std::move(bytes), n);
    if (!r) ++n_errors;
    co_return r;
  }
};

client::client(config cfg) : impl_(std::make_shared<impl>(std::move(cfg))) {
  impl_->thread = std::thread([i = impl_.get()] { i->ioc.run(); });
}

client::~client() {
  impl_->stopping = true;
  asio::post(impl_->ioc, [i = impl_.get()] {
    for (auto& c : i->conns) i->fail_connection(*c, c->generation, make_error(errc::io_error, "redis: client stopped"));
    i->guard.reset();
  });
  if (impl_->thread.joinable()) impl_->thread.join();
}

awaitable<result<reply>> client::command(std::vector<std::string> args) {
  std::string bytes;
  append_command(bytes, args);
  auto r = co_await asio::co_spawn(impl_->ioc, impl_->run(std::move(bytes), 1), use_awaitable);
  if (!r) co_return r.error();
  co_return std::move(r->front());
}

awaitable<result<std::vector<reply>>> client::pipeline(std::vector<std::vector<std::string>> cmds) {
  if (cmds.empty()) co_return std::vector<reply>{};
  std::string bytes;
  for (auto& c : cmds) append_command(bytes, c);
  co_return co_await asio::co_spawn(impl_->ioc, impl_->run(std::move(bytes), cmds.size()), use_awaitable);
}

awaitable<result<reply>> client::eval(std::string_view script, std::vector<std::string> keys,
                                      std::vector<std::string> args) {
  std::vector<std::string> cmd;
  cmd.reserve(3 + keys.size() + args.size());
  cmd.push_back("EVALSHA");
  cmd.push_back(script_sha1(script));
  cmd.push_back(std::to_string(keys.size()));
  for (auto& k : keys) cmd.push_back(k);
  for (auto& a : args) cmd.push_back(a);
  auto r = co_await command(cmd);
  if (!r) co_return r;
  if (r->is_error() && r->str.starts_with("NOSCRIPT")) {
    cmd[0] = "EVAL";
    cmd[1] = std::string(script);
    co_return co_await command(std::move(cmd));
  }
  co_return r;
}

client_stats client::stats() const noexcept {
  return client_stats{impl_->n_commands.load(), impl_->n_errors.load(), impl_->n_timeouts.load(),
                      impl_->n_reconnects.load()};
}

const config& client::cfg() const noexcept { return impl_->cfg; }

}  // namespace fp::redis
