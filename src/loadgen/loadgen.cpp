// The load generator: one io_context per thread, coroutines, a minimal keep-alive HTTP/1.1 client
// (own response parser with incremental chunked decoding, so each SSE event is timed when it
// arrives), and the fast chunk parser from fp_api.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <list>
#include <random>
#include <thread>

#include "api/api.hpp"
#include "loadgen/loadgen.hpp"

namespace fp::loadgen {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::as_tuple;
using asio::use_awaitable;

struct target {
  std::string host;
  std::string port;
  std::string path;
};

result<target> parse_url(std::string_view url, bool legacy) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) {
    return make_error(errc::invalid_request, fmt::format("--url: only http:// URLs are supported ('{}')", url));
  }
  url.remove_prefix(scheme.size());
  target t;
  auto slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  auto colon = hostport.rfind(':');
  if (colon == std::string_view::npos) {
    t.host = hostport;
    t.port = "80";
  } else {
    t.host = hostport.substr(0, colon);
    t.port = hostport.substr(colon + 1);
  }
  if (t.host.empty()) return make_error(errc::invalid_request, "--url: missing host");
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (!path.ends_with("/completions")) path += legacy ? "/completions" : "/chat/completions";
  if (path.front() != '/') path = "/" + path;
  t.path = path;
  return t;
}

std::vector<std::string> load_prompts(const options& o) {
  std::vector<std::string> out;
  if (!o.prompts_file.empty()) {
    std::ifstream f(o.prompts_file);
    if (!f) throw std::runtime_error("--prompts: cannot open " + o.prompts_file);
    std::string line;
    while (std::getline(f, line)) {
      if (!line.empty()) out.push_back(line);
    }
    if (out.empty()) throw std::runtime_error("--prompts: no prompts in " + o.prompts_file);
    return out;
  }
  static constexpr std::string_view words[] = {"please", "explain", "how", "a", "fast", "gateway", "streams",
                                               "tokens", "to", "many", "clients", "with", "low", "latency",
                                               "and", "why", "it", "matters"};
  for (int p = 0; p < 64; ++p) {
    std::string s = fmt::format("Prompt {}:", p);
    for (int i = 0; i < o.prompt_words; ++i) {
      s += ' ';
      s += words[(p * 7 + i * 3) % std::size(words)];
    }
    out.push_back(s);
  }
  return out;
}

// The full HTTP request bytes for one prompt.
std::string build_request(const options& o, const target& t, const std::string& prompt) {
  boost::json::object body;
  bool json_line = false;
  if (!prompt.empty() && prompt.front() == '{') {
    boost::system::error_code ec;
    auto v = boost::json::parse(prompt, ec);
    if (!ec && v.is_object()) {
      body = std::move(v.as_object());
      json_line = true;
    }
  }
  if (!json_line) {
    if (o.legacy_completions) {
      body["prompt"] = prompt;
    } else {
      body["messages"] = boost::json::array{boost::json::object{{"role", "user"}, {"content", prompt}}};
    }
  }
  if (!o.model.empty() || !body.contains("model")) body["model"] = o.model;
  body["stream"] = o.stream;
  if (o.stream && o.extra_body_include_usage) body["stream_options"] = boost::json::object{{"include_usage", true}};
  if (o.max_tokens > 0) body["max_tokens"] = o.max_tokens;
  std::string b = boost::json::serialize(body);
  std::string r = fmt::format("POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nAccept: {}\r\n",
                              t.path, t.host, t.port, o.stream ? "text/event-stream" : "application/json");
  for (const auto& [k, v] : o.headers) r += fmt::format("{}: {}\r\n", k, v);
  r += fmt::format("Content-Length: {}\r\n\r\n", b.size());
  r += b;
  return r;
}

struct sample {
  int64_t ttft_ns = -1;
  int64_t e2e_ns = 0;
  int64_t tokens = 0;
};

struct thread_results {
  std::vector<int64_t> ttft, itl, tpot, e2e;
  int64_t ok = 0, errors = 0, tokens = 0;
  std::map<std::string, int64_t> error_kinds;
  void error(const std::string& kind) {
    ++errors;
    ++error_kinds[kind];
  }
};

// Receive buffer with a read offset (no memmove per consumed byte).
struct rbuf {
  std::string data;
  size_t pos = 0;
  std::string_view view() const noexcept { return {data.data() + pos, data.size() - pos}; }
  void consume(size_t n) noexcept {
    pos += n;
    if (pos == data.size()) {
      data.clear();
      pos = 0;
    }
  }
};

struct connection {
  explicit connection(asio::any_io_executor ex) : sock(ex) {}
  tcp::socket sock;
  bool open = false;
  rbuf in;
  int64_t deadline_ns = INT64_MAX;
  char tmp[65536];
};

enum class outcome { ok, connect, timeout, io, http_status, stream_error, truncated, parse };

class worker_ctx {
 public:
  worker_ctx(asio::io_context& io, const options& o, const tcp::resolver::results_type& eps,
             const std::vector<std::string>& reqs)
      : io_(io), opt_(o), eps_(eps), reqs_(reqs) {}

  // One request on connection c; fills s. Never throws.
  asio::awaitable<outcome> run_one(connection& c, const std::string& req_bytes, int64_t start_ns, sample& s,
                                   std::vector<int64_t>* itl, int& status) {
    c.deadline_ns = now_ns() + static_cast<int64_t>(opt_.timeout_s * 1e9);
    if (!c.open) {
      c.sock = tcp::socket(io_);
      auto [ec, ep] = co_await asio::async_connect(c.sock, eps_, as_tuple(use_awaitable));
      if (ec) co_return outcome::connect;
      c.sock.set_option(tcp::no_delay(true), ec);
      c.open = true;
      c.in = {};
    }
    {
      auto [ec, n] = co_await asio::async_write(c.sock, asio::buffer(req_bytes), as_tuple(use_awaitable));
      if (ec) co_return timed_out(c) ? outcome::timeout : outcome::io;
    }
    auto read_more = [&]() -> asio::awaitable<bool> {
      auto [ec, n] = co_await c.sock.async_read_some(asio::buffer(c.tmp), as_tuple(use_awaitable));
      if (ec) co_return false;
      c.in.data.append(c.tmp, n);
      co_return true;
    };
    // Status line and headers.
    size_t he;
    while ((he = c.in.view().find("\r\n\r\n")) == std::string_view::npos) {
      if (c.in.view().size() > 65536) co_return outcome::parse;
      if (!co_await read_more()) co_return timed_out(c) ? outcome::timeout : outcome::io;
    }
    std::string_view head = c.in.view().substr(0, he);
    if (head.size() < 12 || !head.starts_with("HTTP/1.")) co_return outcome::parse;
    status = std::atoi(std::string(head.substr(9, 3)).c_str());
    bool chunked = false, close_after = false;
    int64_t content_length = -1;
    {
      size_t p = head.find("\r\n");
      while (p != std::string_view::npos && p < head.size()) {
        size_t next = head.find("\r\n", p + 2);
        std::string_view line = head.substr(p + 2, next == std::string_view::npos ? std::string_view::npos : next - p - 2);
        auto colon = line.find(':');
        if (colon != std::string_view::npos) {
          std::string name(line.substr(0, colon));
          for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          std::string_view val = line.substr(colon + 1);
          while (!val.empty() && val.front() == ' ') val.remove_prefix(1);
          if (name == "content-length") content_length = std::atoll(std::string(val).c_str());
          if (name == "transfer-encoding" && val.find("chunked") != std::string_view::npos) chunked = true;
          if (name == "connection" && (val == "close" || val == "Close")) close_after = true;
        }
        p = next;
      }
    }
    c.in.consume(he + 4);

    // Body: streamed through the SSE parser, or collected.
    const bool sse = opt_.stream && status == 200;
    api::sse_parser parser;
    api::sse_event ev;
    std::string body;
    int64_t last_token_ns = -1;
    bool saw_done = false, stream_err = false;
    int64_t usage_tokens = -1, chunk_tokens = 0;
    auto on_body = [&](std::string_view bytes) {
      if (!sse) {
        body.append(bytes);
        return;
      }
      parser.feed(bytes);
      while (parser.next(ev)) {
        if (ev.done()) {
          saw_done = true;
          continue;
        }
        auto ch = api::parse_openai_chunk(ev.data);
        if (!ch) {
          stream_err = true;
          continue;
        }
        if (ch->usage) usage_tokens = ch->usage->completion_tokens;
        if (!ch->content.empty() || ch->has_tool_calls) {
          int64_t t = now_ns();
          if (s.ttft_ns < 0) {
            s.ttft_ns = t - start_ns;
          } else if (itl) {
            itl->push_back(t - last_token_ns);
          }
          last_token_ns = t;
          ++chunk_tokens;
        }
      }
    };
    if (chunked) {
      for (;;) {
        size_t le;
        while ((le = c.in.view().find("\r\n")) == std::string_view::npos) {
          if (c.in.view().size() > 64) co_return outcome::parse;
          if (!co_await read_more()) co_return timed_out(c) ? outcome::timeout : outcome::truncated;
        }
        size_t size = std::strtoul(std::string(c.in.view().substr(0, le)).c_str(), nullptr, 16);
        c.in.consume(le + 2);
        if (size == 0) {
          while (c.in.view().size() < 2) {
            if (!co_await read_more()) co_return outcome::truncated;
          }
          c.in.consume(2);
          break;
        }
        size_t left = size;
        while (left > 0) {
          if (c.in.view().empty() && !co_await read_more()) {
            co_return timed_out(c) ? outcome::timeout : outcome::truncated;
          }
          size_t n = std::min(left, c.in.view().size());
          on_body(c.in.view().substr(0, n));
          c.in.consume(n);
          left -= n;
        }
        while (c.in.view().size() < 2) {
          if (!co_await read_more()) co_return outcome::truncated;
        }
        c.in.consume(2);
      }
    } else if (content_length >= 0) {
      size_t left = static_cast<size_t>(content_length);
      while (left > 0) {
        if (c.in.view().empty() && !co_await read_more()) {
          co_return timed_out(c) ? outcome::timeout : outcome::truncated;
        }
        size_t n = std::min(left, c.in.view().size());
        on_body(c.in.view().substr(0, n));
        c.in.consume(n);
        left -= n;
      }
    } else {
      for (;;) {
        if (!c.in.view().empty()) {
          on_body(c.in.view());
          c.in.consume(c.in.view().size());
        }
        if (!co_await read_more()) break;
      }
      close_after = true;
    }
    int64_t end = now_ns();
    s.e2e_ns = end - start_ns;
    if (close_after) close(c);
    if (status != 200) co_return outcome::http_status;
    if (sse) {
      if (stream_err) co_return outcome::stream_error;
      if (!saw_done) co_return outcome::truncated;
      s.tokens = usage_tokens >= 0 ? usage_tokens : chunk_tokens;
    } else {
      auto ch = api::parse_openai_chunk(body);
      if (!ch) co_return outcome::parse;
      s.tokens = ch->usage ? ch->usage->completion_tokens : 1;
      s.ttft_ns = s.e2e_ns;
    }
    co_return outcome::ok;
  }

  void record(outcome oc, int status, const sample& s, thread_results& r) {
    switch (oc) {
      case outcome::ok: {
        ++r.ok;
        r.tokens += s.tokens;
        r.e2e.push_back(s.e2e_ns);
        if (s.ttft_ns >= 0) r.ttft.push_back(s.ttft_ns);
        if (opt_.stream && s.tokens > 1 && s.ttft_ns >= 0) r.tpot.push_back((s.e2e_ns - s.ttft_ns) / (s.tokens - 1));
        return;
      }
      case outcome::connect: r.error("connect"); return;
      case outcome::timeout: r.error("timeout"); return;
      case outcome::io: r.error("io"); return;
      case outcome::http_status: r.error(fmt::format("http_{}", status)); return;
      case outcome::stream_error: r.error("stream_error"); return;
      case outcome::truncated: r.error("truncated"); return;
      case outcome::parse: r.error("bad_response"); return;
    }
  }

  static void close(connection& c) {
    boost::system::error_code ec;
    c.sock.close(ec);
    c.open = false;
    c.in = {};
  }
  bool timed_out(connection& c) const { return now_ns() >= c.deadline_ns; }

  // Closes connections whose request is past its deadline (cancels their pending I/O).
  asio::awaitable<void> watchdog(std::list<connection>& conns, const std::atomic<bool>& stop) {
    asio::steady_timer t(io_);
    while (!stop.load()) {
      t.expires_after(std::chrono::milliseconds(50));
      co_await t.async_wait(as_tuple(use_awaitable));
      int64_t now = now_ns();
      for (auto& c : conns) {
        if (c.open && now >= c.deadline_ns) {
          boost::system::error_code ec;
          c.sock.cancel(ec);
          c.sock.close(ec);
          c.open = false;
        }
      }
    }
  }

  asio::io_context& io_;
  const options& opt_;
  const tcp::resolver::results_type& eps_;
  const std::vector<std::string>& reqs_;
};

struct shared_state {
  std::atomic<int64_t> next{0};
  int64_t limit = INT64_MAX;       // request index limit (warmup + measured)
  int64_t warmup = 0;
  int64_t end_ns = INT64_MAX;      // measured phase end
  std::atomic<int64_t> measure_start_ns{0};
  std::atomic<int64_t> last_end_ns{0};
};

void thread_closed_loop(const options& o, int conc, const tcp::resolver::results_type& eps,
                        const std::vector<std::string>& reqs, shared_state& sh, thread_results& res) {
  asio::io_context io(1);
  worker_ctx w(io, o, eps, reqs);
  std::list<connection> conns;
  std::atomic<bool> stop{false};
  std::atomic<int> live{conc};
  for (int i = 0; i < conc; ++i) {
    conns.emplace_back(io.get_executor());
    connection& c = conns.back();
    asio::co_spawn(io, [&w, &c, &sh, &res, &o, &reqs, &stop, &live]() -> asio::awaitable<void> {
      for (;;) {
        int64_t idx = sh.next.fetch_add(1);
        if (idx >= sh.limit) break;
        bool measured = idx >= sh.warmup;
        int64_t start = now_ns();
        if (measured) {
          int64_t expected = 0;
          sh.measure_start_ns.compare_exchange_strong(expected, start);
          if (start >= sh.end_ns) break;
        }
        sample s;
        int status = 0;
        auto oc = co_await w.run_one(c, reqs[static_cast<size_t>(idx) % reqs.size()], start, s,
                                     measured ? &res.itl : nullptr, status);
        if (oc != outcome::ok) worker_ctx::close(c);
        if (measured) {
          w.record(oc, status, s, res);
          int64_t end = now_ns();
          int64_t prev = sh.last_end_ns.load();
          while (end > prev && !sh.last_end_ns.compare_exchange_weak(prev, end)) {
          }
        }
      }
      if (--live == 0) stop = true;
      (void)o;
    }, asio::detached);
  }
  asio::co_spawn(io, w.watchdog(conns, stop), asio::detached);
  io.run();
}

void open_loop(const options& o, const tcp::resolver::results_type& eps, const std::vector<std::string>& reqs,
               shared_state& sh, thread_results& res) {
  asio::io_context io(1);
  worker_ctx w(io, o, eps, reqs);
  std::list<connection> conns;
  std::vector<connection*> idle;
  std::atomic<bool> stop{false};
  int64_t inflight = 0;
  std::mt19937_64 rng(12345);
  std::exponential_distribution<double> gap(o.rate);
  auto issue = [&](int64_t idx, int64_t scheduled, bool measured) -> asio::awaitable<void> {
    connection* c;
    if (!idle.empty()) {
      c = idle.back();
      idle.pop_back();
    } else {
      conns.emplace_back(io.get_executor());
      c = &conns.back();
    }
    sample s;
    int status = 0;
    auto oc = co_await w.run_one(*c, reqs[static_cast<size_t>(idx) % reqs.size()], scheduled, s,
                                 measured ? &res.itl : nullptr, status);
    if (oc != outcome::ok) worker_ctx::close(*c);
    idle.push_back(c);
    if (measured) {
      w.record(oc, status, s, res);
      sh.last_end_ns = std::max(sh.last_end_ns.load(), now_ns());
    }
    --inflight;
  };
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    asio::steady_timer t(io);
    int64_t next = now_ns();
    for (int64_t idx = 0; idx < sh.limit; ++idx) {
      bool measured = idx >= sh.warmup;
      if (measured && sh.measure_start_ns.load() == 0) sh.measure_start_ns = next;
      if (measured && next >= sh.end_ns) break;
      int64_t now = now_ns();
      if (next > now) {
        t.expires_after(std::chrono::nanoseconds(next - now));
        co_await t.async_wait(as_tuple(use_awaitable));
      }
      if (inflight < o.max_connections) {
        ++inflight;
        asio::co_spawn(io, issue(idx, next, measured), asio::detached);
      } else if (measured) {
        res.error("client_overloaded");
      }
      next += static_cast<int64_t>(gap(rng) * 1e9);
    }
    asio::steady_timer wt(io);
    while (inflight > 0) {
      wt.expires_after(std::chrono::milliseconds(1));
      co_await wt.async_wait(as_tuple(use_awaitable));
    }
    stop = true;
  }, asio::detached);
  asio::co_spawn(io, w.watchdog(conns, stop), asio::detached);
  io.run();
}

}  // namespace

stat summarize_ns(std::vector<int64_t>& v) {
  stat s;
  s.count = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    if (rank == 0) rank = 1;
    return v[std::min(rank, v.size()) - 1] / 1000.0;
  };
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  s.mean = sum / static_cast<double>(v.size()) / 1000.0;
  s.p50 = pct(50);
  s.p90 = pct(90);
  s.p99 = pct(99);
  s.min = v.front() / 1000.0;
  s.max = v.back() / 1000.0;
  return s;
}

result<report> run(const options& o) {
  auto t = parse_url(o.url, o.legacy_completions);
  if (!t) return t.error();
  if (o.concurrency < 1 && o.rate <= 0) return make_error(errc::invalid_request, "--concurrency must be >= 1");
  if (o.requests <= 0 && o.duration_s <= 0) {
    return make_error(errc::invalid_request, "give --requests or --duration");
  }
  std::vector<std::string> reqs;
  try {
    for (const auto& p : load_prompts(o)) reqs.push_back(build_request(o, *t, p));
  } catch (const std::exception& e) {
    return make_error(errc::invalid_request, e.what());
  }
  asio::io_context rio;
  tcp::resolver resolver(rio);
  boost::system::error_code ec;
  auto eps = resolver.resolve(t->host, t->port, ec);
  if (ec) return make_error(errc::invalid_request, fmt::format("--url: cannot resolve {}: {}", t->host, ec.message()));

  shared_state sh;
  sh.warmup = o.warmup >= 0 ? o.warmup : (o.rate > 0 ? 0 : o.concurrency);
  sh.limit = o.requests > 0 ? sh.warmup + o.requests : INT64_MAX;
  int threads = o.rate > 0 ? 1 : std::max(1, std::min(o.threads, o.concurrency));
  std::vector<thread_results> res(static_cast<size_t>(threads));
  // The duration clock starts now (warm-up included in the wall time, not in the samples).
  int64_t t0 = now_ns();
  if (o.duration_s > 0) sh.end_ns = t0 + static_cast<int64_t>(o.duration_s * 1e9);
  if (o.rate > 0) {
    open_loop(o, eps, reqs, sh, res[0]);
  } else {
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; ++i) {
      int conc = o.concurrency / threads + (i < o.concurrency % threads ? 1 : 0);
      ts.emplace_back([&, i, conc] { thread_closed_loop(o, conc, eps, reqs, sh, res[static_cast<size_t>(i)]); });
    }
    for (auto& th : ts) th.join();
  }
  report r;
  r.opt = o;
  thread_results all;
  for (auto& x : res) {
    all.ok += x.ok;
    all.errors += x.errors;
    all.tokens += x.tokens;
    for (auto& [k, v] : x.error_kinds) all.error_kinds[k] += v;
    all.ttft.insert(all.ttft.end(), x.ttft.begin(), x.ttft.end());
    all.itl.insert(all.itl.end(), x.itl.begin(), x.itl.end());
    all.tpot.insert(all.tpot.end(), x.tpot.begin(), x.tpot.end());
    all.e2e.insert(all.e2e.end(), x.e2e.begin(), x.e2e.end());
  }
  r.ok = all.ok;
  r.errors = all.errors;
  r.error_kinds = all.error_kinds;
  r.output_tokens = all.tokens;
  int64_t start = sh.measure_start_ns.load();
  int64_t end = sh.last_end_ns.load();
  r.elapsed_s = start > 0 && end > start ? (end - start) / 1e9 : 0;
  if (r.elapsed_s > 0) {
    r.req_per_s = static_cast<double>(r.ok) / r.elapsed_s;
    r.output_tokens_per_s = static_cast<double>(r.output_tokens) / r.elapsed_s;
  }
  r.ttft_us = summarize_ns(all.ttft);
  r.itl_us = summarize_ns(all.itl);
  r.tpot_us = summarize_ns(all.tpot);
  r.e2e_us = summarize_ns(all.e2e);
  return r;
}

std::string format_table(const report& r) {
  std::string mode = r.opt.rate > 0 ? fmt::format("open loop {:.1f} req/s", r.opt.rate)
                                    : fmt::format("closed loop c={}", r.opt.concurrency);
  std::string out = fmt::format("fastpath bench  {}  {}  {}\n", r.opt.url, r.opt.stream ? "stream" : "non-stream", mode);
  out += fmt::format("requests {}  errors {}  elapsed {:.3f} s  req/s {:.1f}  output tok/s {:.1f}\n", r.ok, r.errors,
                     r.elapsed_s, r.req_per_s, r.output_tokens_per_s);
  for (const auto& [k, v] : r.error_kinds) out += fmt::format("  error {}: {}\n", k, v);
  out += fmt::format("{:<6} {:>12} {:>12} {:>12} {:>12} {:>12}   (microseconds)\n", "", "mean", "p50", "p90", "p99", "max");
  auto row = [&](std::string_view name, const stat& s) {
    if (s.count == 0) return;
    out += fmt::format("{:<6} {:>12.1f} {:>12.1f} {:>12.1f} {:>12.1f} {:>12.1f}\n", name, s.mean, s.p50, s.p90, s.p99, s.max);
  };
  row("ttft", r.ttft_us);
  row("itl", r.itl_us);
  row("tpot", r.tpot_us);
  row("e2e", r.e2e_us);
  return out;
}

std::string format_json(const report& r) {
  auto st = [](const stat& s) {
    return boost::json::object{{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99},
                               {"min", s.min},   {"max", s.max}, {"count", s.count}};
  };
  boost::json::object kinds;
  for (const auto& [k, v] : r.error_kinds) kinds[k] = v;
  boost::json::object o{{"url", r.opt.url},
                        {"model", r.opt.model},
                        {"stream", r.opt.stream},
                        {"concurrency", r.opt.concurrency},
                        {"rate", r.opt.rate},
                        {"requests", r.ok},
                        {"errors", r.errors},
                        {"error_kinds", std::move(kinds)},
                        {"elapsed_s", r.elapsed_s},
                        {"req_per_s", r.req_per_s},
                        {"output_tokens", r.output_tokens},
                        {"output_tokens_per_s", r.output_tokens_per_s},
                        {"ttft_us", st(r.ttft_us)},
                        {"itl_us", st(r.itl_us)},
                        {"tpot_us", st(r.tpot_us)},
                        {"e2e_us", st(r.e2e_us)}};
  return boost::json::serialize(o);
}

}  // namespace fp::loadgen
