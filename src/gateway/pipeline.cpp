// The serving pipeline: the http::handler behind every endpoint, the client-facing SSE sink, the
// default cache and router seams, latency accounting (Prometheus histograms + access log).
#include <boost/asio/this_coro.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <charconv>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "api/api.hpp"
#include "common/thread_spares.hpp"
#include "gateway/pipeline_impl.hpp"
#include "metrics/metrics.hpp"

namespace fp::gateway {

using boost::asio::awaitable;

// ---- default seams --------------------------------------------------------------------------------

awaitable<result<api::usage>> cache_hook::stream(request_context& ctx, providers::chunk_sink& client, stream_fn upstream) {
  co_return co_await upstream(ctx, client);
}
awaitable<result<api::response>> cache_hook::complete(request_context& ctx, complete_fn upstream) {
  co_return co_await upstream(ctx);
}

namespace {
// Failures worth trying the next deployment for (nothing reached the client yet).
bool retryable(const error& e) {
  if (e.code == errc::cancelled || e.code == errc::invalid_request || e.code == errc::unsupported) return false;
  int s = e.status();
  return s == 429 || s >= 500;
}

// Before each provider call (ctx.stats reset for it, with the call's start time).
void note_attempt(request_context& ctx, const deployment& d) {
  ctx.stats = {};
  ctx.stats.started_ns = now_ns();
  if (ctx.t.upstream_start_ns < 0) ctx.t.upstream_start_ns = ctx.stats.started_ns;
  ctx.provider.assign(d.p->name());  // assign: a retry reuses the strings' storage
  ctx.upstream_model.assign(d.opts.upstream_model.empty() ? ctx.req.model : d.opts.upstream_model);
}
}  // namespace

namespace {
awaitable<result<api::usage>> stream_with_fallbacks(request_context& ctx, std::span<const deployment> ds,
                                                    providers::chunk_sink& sink) {
  result<api::usage> r = make_error(errc::not_found, "no deployment");
  for (const auto& d : ds) {
    note_attempt(ctx, d);
    r = co_await d.p->stream(ctx.req, d.opts, sink, ctx.stats);
    if (r || ctx.stats.first_byte_sent || !retryable(r.error())) co_return r;
  }
  co_return r;
}

awaitable<result<api::response>> complete_with_fallbacks(request_context& ctx, std::span<const deployment> ds) {
  result<api::response> r = make_error(errc::not_found, "no deployment");
  for (const auto& d : ds) {
    note_attempt(ctx, d);
    r = co_await d.p->complete(ctx.req, d.opts, ctx.stats);
    if (r || !retryable(r.error())) co_return r;
  }
  co_return r;
}
}  // namespace

// One deployment has nothing to fall back to: the provider's call itself, without a coroutine
// frame of the router's around it (asio awaitables start when awaited, with these arguments).
awaitable<result<api::usage>> router::stream(request_context& ctx, std::span<const deployment> ds,
                                             providers::chunk_sink& sink) {
  if (ds.size() != 1) return stream_with_fallbacks(ctx, ds, sink);
  note_attempt(ctx, ds[0]);
  return ds[0].p->stream(ctx.req, ds[0].opts, sink, ctx.stats);
}

awaitable<result<api::response>> router::complete(request_context& ctx, std::span<const deployment> ds) {
  if (ds.size() != 1) return complete_with_fallbacks(ctx, ds);
  note_attempt(ctx, ds[0]);
  return ds[0].p->complete(ctx.req, ds[0].opts, ctx.stats);
}

// ---- latency accounting ---------------------------------------------------------------------------

namespace {

struct model_metrics {
  metrics::histogram* pre_upstream;
  metrics::histogram* upstream_ttfb;
  metrics::histogram* ttft;
  metrics::histogram* inter_token;
  metrics::histogram* total;
};

// Hash and equality of (string, string-or-int) pairs that also take views, so the per-request
// lookups below build no key (heterogeneous lookup).
template <class Second>
struct pair_key {
  using view = std::pair<std::string_view, Second>;
  using is_transparent = void;
  size_t operator()(view k) const noexcept {
    size_t h = std::hash<std::string_view>{}(k.first);
    return h ^ (std::hash<Second>{}(k.second) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
  bool operator()(view a, view b) const noexcept { return a == b; }
};

model_metrics& metrics_for(std::string_view model, std::string_view provider) {
  // Per-thread cache of the (locked) registry lookups; bounded by the configured model x provider
  // pairs (plus one entry per unknown pair that reached here, which needs a valid deployment).
  using key_fn = pair_key<std::string_view>;
  thread_local std::unordered_map<std::pair<std::string, std::string>, model_metrics, key_fn, key_fn> cache;
  auto it = cache.find(key_fn::view{model, provider});
  if (it != cache.end()) return it->second;
  metrics::labels l{{"model", std::string(model)}, {"provider", std::string(provider)}};
  model_metrics m{
      &metrics::get_histogram("fastpath_gateway_pre_upstream_seconds",
                              "Time in the gateway before the upstream call started", l),
      &metrics::get_histogram("fastpath_upstream_ttfb_seconds", "Upstream time to first response byte", l),
      &metrics::get_histogram("fastpath_ttft_seconds", "Time to first token at the client (request read -> first chunk written)", l),
      &metrics::get_histogram("fastpath_inter_token_seconds", "Gap between consecutive streamed chunks written to the client", l),
      &metrics::get_histogram("fastpath_request_duration_seconds", "Request read -> response complete", l),
  };
  return cache.emplace(std::pair<std::string, std::string>(model, provider), m).first->second;
}

metrics::counter& requests_counter(std::string_view path, int status) {
  using key_fn = pair_key<int>;
  thread_local std::unordered_map<std::pair<std::string, int>, metrics::counter*, key_fn, key_fn> cache;
  auto it = cache.find(key_fn::view{path, status});
  if (it != cache.end()) return *it->second;
  auto& c = metrics::get_counter("fastpath_requests_total", "HTTP requests answered, by endpoint and status",
                                 {{"endpoint", std::string(path)}, {"status", std::to_string(status)}});
  cache.emplace(std::pair<std::string, int>(path, status), &c);
  return c;
}

double secs(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// Unix milliseconds at a now_ns() time, from one pairing of the two clocks per thread (for request
// ids: a wall clock read per request cost as much as the id's formatting).
int64_t wall_ms_at(int64_t mono_ns) {
  thread_local const int64_t mono0 = now_ns();
  thread_local const int64_t wall0 = system_clock::instance().wall_ms();
  return wall0 + (mono_ns - mono0) / 1000000;
}
int64_t us(int64_t ns) { return ns < 0 ? -1 : ns / 1000; }

// Appends v in lower-case hex (as fmt's {:x}).
char* put_hex(char* p, uint64_t v) {
  char tmp[16];
  int n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

// Appends ns as milliseconds with three decimals (as fmt's {:.3f} of ns / 1e6, rounded to the
// nearest microsecond), with integer arithmetic.
char* put_ms3(char* p, int64_t ns) {
  uint64_t a = ns < 0 ? 0 - static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  uint64_t us_r = (a + 500) / 1000;
  if (ns < 0 && us_r > 0) *p++ = '-';
  auto [end, ec] = std::to_chars(p, p + 20, us_r / 1000);
  p = end;
  uint64_t frac = us_r % 1000;
  *p++ = '.';
  *p++ = static_cast<char>('0' + frac / 100);
  *p++ = static_cast<char>('0' + frac / 10 % 10);
  *p++ = static_cast<char>('0' + frac % 10);
  return p;
}

char* put_str(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

}  // namespace

// ---- response heads -------------------------------------------------------------------------------

namespace {
// A response's headers as views, on the stack unless stages added many: the fixed ones first,
// then what the stages put in ctx.response_headers. Lives until the respond()/begin_stream() it
// is passed to has been awaited.
class header_views {
 public:
  header_views(const http::header_list& extra, std::initializer_list<http::header_view> fixed) {
    const size_t total = fixed.size() + extra.size();
    http::header_view* out = total <= inline_.size() ? inline_.data() : (spill_.resize(total), spill_.data());
    for (const auto& f : fixed) out[n_++] = f;
    for (const auto& kv : extra) out[n_++] = {kv.first, kv.second};
    data_ = out;
  }
  header_views(const header_views&) = delete;
  header_views& operator=(const header_views&) = delete;
  std::span<const http::header_view> view() const noexcept { return {data_, n_}; }

 private:
  std::array<http::header_view, 12> inline_;
  std::vector<http::header_view> spill_;
  http::header_view* data_ = nullptr;
  size_t n_ = 0;
};
}  // namespace

// ---- the client-facing SSE sink -----------------------------------------------------------------

namespace {

class sse_sink final : public providers::chunk_sink {
 public:
  sse_sink(request_context& ctx, http::responder& res, model_metrics* m) : ctx_(ctx), res_(res), m_(m) {
    buf_ = thread_spares<std::string>::take();  // a buffer from an earlier stream on this thread
  }
  ~sse_sink() override {
    if (buf_.capacity() > (1u << 20)) return;  // an outsized one is not kept
    buf_.clear();
    thread_spares<std::string>::give(std::move(buf_));
  }
  sse_sink(const sse_sink&) = delete;
  sse_sink& operator=(const sse_sink&) = delete;

  // Sends the response head (with `first`, the first events, in the same write).
  awaitable<bool> start(std::string_view first = {}) {
    if (res_.started()) {
      if (first.empty()) co_return !res_.client_gone();
      co_return co_await res_.write_chunk(first);
    }
    header_views h = stream_head();
    co_return co_await res_.begin_stream(200, h.view(), first);
  }

  awaitable<bool> on_chunk(const api::chunk& c) override { co_return co_await on_chunks(std::span(&c, 1)); }

  // Every chunk that exists now goes out in one write (one syscall, one wake-up of the client).
  awaitable<bool> on_chunks(std::span<const api::chunk> cs) override {
    bool content = false;
    size_t n = frame(cs, content);
    if (n == 0) co_return !res_.client_gone();
    if (!co_await start(buf_)) co_return false;
    sent(n, content);
    co_return true;
  }

  // The upstream's last chunks: they, [DONE] and the end of the response in one write (with the
  // head too when nothing was sent yet), instead of a second write and client wake-up for [DONE].
  awaitable<bool> on_final_chunks(std::span<const api::chunk> cs) override {
    bool content = false;
    size_t n = frame(cs, content);
    buf_.append(api::sse_done);
    bool ok;
    if (res_.started()) {
      ok = co_await res_.end_stream(true, buf_);
    } else {
      header_views h = stream_head();
      ok = co_await res_.respond_stream(200, h.view(), buf_);
    }
    ended_ = true;
    if (!ok) co_return false;
    sent(n, content);
    co_return true;
  }

  // Whether on_final_chunks ended the response ([DONE] included).
  bool ended() const noexcept { return ended_; }
  int64_t chunks() const noexcept { return chunks_; }

 private:
  // The stream's response headers (built in place in the caller: views into this object).
  header_views stream_head() const {
    return header_views(ctx_.response_headers,
                        {{"Content-Type", "text/event-stream; charset=utf-8"}, {"Cache-Control", "no-cache"},
                         {"X-Accel-Buffering", "no"}, {"x-request-id", ctx_.request_id}});
  }

  // The events of `cs` the client gets, framed into buf_; returns how many.
  size_t frame(std::span<const api::chunk> cs, bool& content) {
    if (!m_ && !ctx_.provider.empty()) m_ = &metrics_for(ctx_.req.model, ctx_.provider);
    buf_.clear();
    size_t need = api::sse_done.size();  // one allocation at most, not one per doubling
    for (const auto& c : cs) need += c.json.size() + 8;
    buf_.reserve(need);
    size_t n = 0;
    for (const auto& c : cs) {
      // The gateway always asks upstreams for usage; a client that did not ask does not get it.
      bool usage_only = c.usage && c.content.empty() && c.finish == api::finish_reason::none && !c.has_tool_calls;
      if (usage_only && !ctx_.req.include_usage) continue;
      api::append_sse_data(buf_, c.json);
      ++n;
      content = content || !c.content.empty() || c.has_tool_calls;
    }
    return n;
  }

  // Accounting after n events went out.
  void sent(size_t n, bool content) {
    chunks_ += static_cast<int64_t>(n);
    if (!content) return;
    int64_t t = now_ns();
    if (ctx_.t.first_chunk_ns < 0) {
      ctx_.t.first_chunk_ns = t;
    } else if (m_) {
      m_->inter_token->observe(secs(t - ctx_.t.last_chunk_ns));
    }
    ctx_.t.last_chunk_ns = t;
  }

  request_context& ctx_;
  http::responder& res_;
  model_metrics* m_;
  std::string buf_;
  int64_t chunks_ = 0;
  bool ended_ = false;
};

}  // namespace

// ---- the handler ----------------------------------------------------------------------------------

namespace {

std::string error_body(const error& e) { return api::openai_error_json(e); }

bool const_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

std::atomic<uint64_t> g_request_seq{0};

}  // namespace

awaitable<void> pipeline::respond_json(http::responder& res, int status, std::string_view body,
                                       const http::header_list* extra) {
  http::header_list h;
  h.emplace_back("Content-Type", "application/json");
  if (extra)
    for (const auto& kv : *extra) h.push_back(kv);
  co_await res.respond(status, h, body);
}

awaitable<void> pipeline::respond_error(http::responder& res, const error& e, const http::header_list* extra) {
  co_await respond_json(res, e.status(), error_body(e), extra);
}

void pipeline::finish_log(request_context* ctx, const http::request& req, int status, bool stream, int64_t chunks,
                          const error* err, const api::usage* u) {
  int64_t done = now_ns();
  std::string_view path = req.path();
  requests_counter(path, status).inc();
  if (ctx && !ctx->provider.empty()) {
    auto& m = metrics_for(ctx->req.model, ctx->provider);
    if (ctx->t.upstream_start_ns >= 0) m.pre_upstream->observe(secs(ctx->t.upstream_start_ns - ctx->t.received_ns));
    if (ctx->stats.upstream_ttfb_ns >= 0) m.upstream_ttfb->observe(secs(ctx->stats.upstream_ttfb_ns));
    if (ctx->t.first_chunk_ns >= 0) m.ttft->observe(secs(ctx->t.first_chunk_ns - ctx->t.received_ns));
    m.total->observe(secs(done - req.received_ns));
  }
  if (!cfg_.access_log) return;
  std::string line;
  line.reserve(384);
  line += "{\"ts_ms\":";
  line += std::to_string(system_clock::instance().wall_ms());
  line += ",\"id\":";
  api::append_json_string(line, ctx ? std::string_view(ctx->request_id) : std::string_view{});
  line += ",\"method\":";
  api::append_json_string(line, req.method);
  line += ",\"path\":";
  api::append_json_string(line, path);
  line += fmt::format(",\"status\":{}", status);
  if (ctx) {
    line += ",\"model\":";
    api::append_json_string(line, ctx->req.model);
    line += ",\"provider\":";
    api::append_json_string(line, ctx->provider);
    line += ",\"upstream_model\":";
    api::append_json_string(line, ctx->upstream_model);
    line += fmt::format(",\"stream\":{}", stream ? "true" : "false");
    auto& t = ctx->t;
    line += fmt::format(",\"gateway_us\":{},\"upstream_ttfb_us\":{},\"ttft_us\":{},\"total_us\":{},\"chunks\":{}",
                        t.upstream_start_ns >= 0 ? us(t.upstream_start_ns - t.received_ns) : -1,
                        us(ctx->stats.upstream_ttfb_ns),
                        t.first_chunk_ns >= 0 ? us(t.first_chunk_ns - t.received_ns) : -1,
                        us(done - t.received_ns), chunks);
    if (u) line += fmt::format(",\"prompt_tokens\":{},\"completion_tokens\":{}", u->prompt_tokens, u->completion_tokens);
  } else {
    line += fmt::format(",\"total_us\":{}", us(done - req.received_ns));
  }
  if (ctx)
    for (const auto& [k, v] : ctx->log_fields) {
      line += ',';
      api::append_json_string(line, k);
      line += ':';
      api::append_json_string(line, v);
    }
  if (err) {
    line += ",\"error\":";
    api::append_json_string(line, errc_name(err->code));
  }
  line += '}';
  write_access_line(line);
}

// Gateway API keys: nullopt when the request may go on (api_key set to the key it presented).
std::optional<error> pipeline::check_auth(const http::request& req, std::string& api_key) const {
  if (cfg_.api_keys.empty()) return std::nullopt;
  std::string_view auth = req.header("authorization");
  std::string_view key;
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) key = auth.substr(7);
  bool ok = false;
  for (const auto& k : cfg_.api_keys) ok = const_time_equal(k, key) || ok;
  if (!ok) return make_error(errc::unauthorized, key.empty() ? "missing API key (Authorization: Bearer ...)" : "invalid API key");
  api_key.assign(key);
  return std::nullopt;
}

// The completion endpoints are handle()'s own path; these coroutines keep its frame small (asio
// recycles coroutine frames of up to 1020 bytes and glibc's per-thread cache serves blocks of up to
// 1032: handle() used to be a 2.9 KB frame, a slow malloc and free on every request).
awaitable<void> pipeline::handle_other(http::request& req, http::responder& res) {
  std::string_view path = req.path();
  const bool post = req.method == "POST";
  const bool get = req.method == "GET";
  if (path == "/health" && get) {
    co_await respond_json(res, 200, R"({"status":"ok"})");
    co_return;
  }
  if (path == "/metrics" && get) {
    http::header_list h{{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
    co_await res.respond(200, h, metrics::render_prometheus());
    co_return;
  }
  std::string api_key;
  std::optional<error> fail = check_auth(req, api_key);  // everything but /health and /metrics
  http::header_list extra;
  if (!fail) {
    if (path == "/v1/models" && get) {
      co_await respond_json(res, 200, models_json_);
      finish_log(nullptr, req, 200, false, 0, nullptr, nullptr);
      co_return;
    }
    if ((path == "/v1/tokenize" || path == "/v1/detokenize") && post) {
      co_await handle_tokenize(req, res, path == "/v1/tokenize");
      co_return;
    }
    if (path == "/v1/chat/completions" || path == "/v1/completions") {
      fail = make_error(errc::invalid_request, fmt::format("{} needs POST", path), 405);
      extra.emplace_back("Allow", "POST");
    } else {
      fail = make_error(errc::not_found, fmt::format("unknown endpoint {} {}", req.method, path));
    }
  }
  co_await respond_error(res, *fail, &extra);
  finish_log(nullptr, req, fail->status(), false, 0, &*fail, nullptr);
}

// Everything before the stages, synchronous: authentication, the body, the request id.
std::optional<error> pipeline::begin_request(http::request& req, api::endpoint kind, request_context& ctx) {
  if (auto e = check_auth(req, ctx.api_key)) return e;
  auto parsed = api::parse_owned_openai_request(std::move(req.body), kind);
  if (!parsed) return std::move(parsed.error());
  ctx.req = std::move(*parsed);
  ctx.t.received_ns = req.received_ns;
  char id[40];  // "fp-<wall ms hex>-<sequence hex>"
  char* p = put_str(id, "fp-");
  p = put_hex(p, static_cast<uint64_t>(wall_ms_at(req.received_ns)));
  *p++ = '-';
  p = put_hex(p, g_request_seq.fetch_add(1, std::memory_order_relaxed));
  ctx.request_id.assign(id, p);
  return std::nullopt;
}

awaitable<void> pipeline::fail_request(request_context* ctx, const http::request& req, http::responder& res,
                                       const error& e) {
  co_await respond_error(res, e, ctx ? &ctx->response_headers : nullptr);  // e.g. Retry-After on a 429
  finish_log(ctx, req, e.status(), ctx && ctx->req.stream, 0, &e, nullptr);
}

awaitable<void> pipeline::handle(http::request& req, http::responder& res) {
  api::endpoint kind;
  {
    std::string_view path = req.path();
    if (path == "/v1/chat/completions" && req.method == "POST") {
      kind = api::endpoint::chat_completions;
    } else if (path == "/v1/completions" && req.method == "POST") {
      kind = api::endpoint::completions;
    } else {
      co_await handle_other(req, res);
      co_return;
    }
  }
  request_context ctx{req, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  std::optional<error> fail = begin_request(req, kind, ctx);
  const bool parsed = !fail;
  for (size_t i = 0; !fail && i < stages_.size(); ++i) {
    auto r = co_await stages_[i]->on_request(ctx);
    if (!r) fail = std::move(r.error());
  }
  if (!fail) {
    ctx.deployments = gw_deployments(ctx.req.model);
    if (ctx.deployments.empty()) fail = make_error(errc::not_found, fmt::format("The model `{}` does not exist", ctx.req.model));
  }
  if (fail) {
    co_await fail_request(parsed ? &ctx : nullptr, req, res, *fail);
  } else if (ctx.req.stream) {
    co_await handle_stream(ctx, res);
  } else {
    co_await handle_complete(ctx, res);
  }
  // The body's buffer back to the connection, for the next request's body.
  if (req.body.empty() && ctx.req.raw_body.capacity() >= 64) req.body = std::move(ctx.req.raw_body);
}

awaitable<void> pipeline::handle_complete(request_context& ctx, http::responder& res) {
  const http::request& req = ctx.http;
  result<api::response> r = make_error(errc::internal, "not run");
  res.watch_client();  // as in handle_stream
  try {
    if (!cache_ || cache_->bypass(ctx)) {
      r = co_await router_->complete(ctx, ctx.deployments);
    } else {
      r = co_await cache_->complete(ctx, [this](request_context& c) { return router_->complete(c, c.deployments); });
    }
  } catch (const boost::system::system_error&) {
    if (!res.client_gone()) {
      res.unwatch_client();
      throw;
    }
  }
  bool finished = res.unwatch_client();
  if (!finished || res.client_gone()) {
    auto e = make_error(errc::cancelled, "client disconnected");
    finish_log(&ctx, req, 499, false, 0, &e, nullptr);
    co_return;
  }
  if (!r) {
    co_await fail_request(&ctx, req, res, r.error());
    co_return;
  }
  if (!respond_complete(ctx, res, *r)) co_await res.respond_rest();
  finish_log(&ctx, req, 200, false, 1, nullptr, r->usage ? &*r->usage : nullptr);
}

// The 200 answer's head (Server-Timing and all) and body, written at once if the socket takes
// them (a plain function: its header views live on the stack, no coroutine frame).
bool pipeline::respond_complete(request_context& ctx, http::responder& res, const api::response& r) {
  int64_t t = now_ns();
  ctx.t.first_chunk_ns = t;
  auto& t0 = ctx.t;
  char timing[192];  // the names + 4 x (sign, 20 digits, ".ddd")
  char* p = put_str(timing, "gateway;dur=");
  p = put_ms3(p, t0.upstream_start_ns >= 0 ? t0.upstream_start_ns - t0.received_ns : 0);
  p = put_str(p, ", upstream_ttfb;dur=");
  p = put_ms3(p, ctx.stats.upstream_ttfb_ns >= 0 ? ctx.stats.upstream_ttfb_ns : 0);
  p = put_str(p, ", upstream;dur=");
  p = put_ms3(p, ctx.stats.upstream_total_ns >= 0 ? ctx.stats.upstream_total_ns : 0);
  p = put_str(p, ", total;dur=");
  p = put_ms3(p, t - t0.received_ns);
  header_views hdr(ctx.response_headers, {{"Content-Type", "application/json"},
                                          {"x-request-id", ctx.request_id},
                                          {"Server-Timing", std::string_view(timing, static_cast<size_t>(p - timing))}});
  return res.respond_now(200, hdr.view(), r.json);
}


awaitable<void> pipeline::handle_stream(request_context& ctx, http::responder& res) {
  sse_sink sink(ctx, res, nullptr);
  result<api::usage> r = make_error(errc::internal, "not run");
  // While the answer is produced, a client that goes away cancels what is awaited (its awaits
  // then report operation_aborted; code that throws instead is caught here).
  res.watch_client();
  try {
    if (!cache_ || cache_->bypass(ctx)) {
      r = co_await router_->stream(ctx, ctx.deployments, sink);
    } else {
      // Captures only `this` (fits std::function's inline storage); the deployments travel with
      // the context the cache runs it with.
      r = co_await cache_->stream(ctx, sink, [this](request_context& c, providers::chunk_sink& s) {
        return router_->stream(c, c.deployments, s);
      });
    }
  } catch (const boost::system::system_error&) {
    if (!res.client_gone()) {
      res.unwatch_client();
      throw;
    }
  }
  bool finished = res.unwatch_client();
  const auto& h = ctx.http;
  if (!finished || res.client_gone()) {
    auto e = make_error(errc::cancelled, "client disconnected");
    finish_log(&ctx, h, 499, true, sink.chunks(), &e, nullptr);
    co_return;
  }
  if (sink.ended()) {  // the last chunks, [DONE] and the end of the response went out together
    if (r) {
      finish_log(&ctx, h, 200, true, sink.chunks(), nullptr, &*r);
    } else {
      const error e = r.error();
      finish_log(&ctx, h, 200, true, sink.chunks(), &e, nullptr);
    }
    co_return;
  }
  if (!r) {
    const error e = r.error();
    if (!res.started()) {  // nothing sent yet: a plain error response with the right status
      co_await respond_error(res, e, &ctx.response_headers);
      finish_log(&ctx, h, e.status(), true, 0, &e, nullptr);
      co_return;
    }
    // Mid-stream failure: an error event, then the stream ends without [DONE] and the connection
    // closes, so no client mistakes it for a complete answer.
    std::string ev;
    api::append_sse_data(ev, error_body(e));
    co_await res.end_stream(false, ev);
    finish_log(&ctx, h, 200, true, sink.chunks(), &e, nullptr);
    co_return;
  }
  if (!co_await sink.start()) {
    auto e = make_error(errc::cancelled, "client disconnected");
    finish_log(&ctx, h, 499, true, sink.chunks(), &e, nullptr);
    co_return;
  }
  co_await res.end_stream(true, api::sse_done);
  finish_log(&ctx, h, 200, true, sink.chunks(), nullptr, &*r);
}


}  // namespace fp::gateway
