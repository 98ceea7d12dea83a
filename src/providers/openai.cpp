// The `openai` provider: any OpenAI-compatible HTTP API (OpenAI, vLLM, SGLang, llama.cpp server,
// Ollama, Groq, ...). The client's body is passed through with only the model replaced and
// stream_options.include_usage added, so fields the gateway does not know still reach the upstream.
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include "providers/providers.hpp"
#include "providers/transport_impl.hpp"

namespace fp::providers {

namespace {

using boost::asio::awaitable;

class openai_provider final : public provider {
 public:
  openai_provider(const deployment_spec& s, http::url_parts where)
      : spec_(s), up_(std::move(where), http::upstream_options{s.max_connections, s.max_connections, std::chrono::seconds(60), s.verify_tls}) {
    if (!spec_.api_key.empty()) auth_ = "Bearer " + spec_.api_key;
  }
  std::string_view name() const noexcept override { return spec_.name; }
  std::string_view kind() const noexcept override { return "openai"; }

  // The client's bytes, forwarded as they came when nothing needs to change (the common case):
  // the same model, and for a stream only stream_options.include_usage to add (spliced in). Empty
  // when the body must be rebuilt.
  std::string passthrough(const api::request& req, const call_options& opts, bool stream) const {
    if (req.raw_body.empty()) return {};
    if (!opts.upstream_model.empty() && opts.upstream_model != req.model) return {};
    const auto* so = req.body.if_contains("stream_options");
    const auto* st = req.body.if_contains("stream");
    if (!stream) {
      // An explicit "stream":false says the same as no field (clients and SDKs send it on every
      // call); stream_options, or a null stream, still go through the rebuild that drops them.
      if (so || (st && *st != false)) return {};
      return req.raw_body;
    }
    if (!st || *st != true) return {};
    if (!spec_.request_usage || (so && so->is_object() && so->as_object().if_contains("include_usage") &&
                                 so->as_object().at("include_usage") == true))
      return req.raw_body;
    if (so) return {};
    auto brace = req.raw_body.find('{');
    if (brace == std::string::npos) return {};
    static constexpr std::string_view usage_opt = "\"stream_options\":{\"include_usage\":true},";
    std::string out;
    out.reserve(req.raw_body.size() + usage_opt.size());
    out.append(req.raw_body, 0, brace + 1).append(usage_opt).append(req.raw_body, brace + 1);
    return out;
  }

  http::client_request build(const api::request& req, const call_options& opts, bool stream) const {
    http::client_request r;
    r.body = passthrough(req, opts, stream);
    if (r.body.empty()) r.body = rebuild(req, opts, stream);
    r.target = up_.where().base_path +
               (req.kind == api::endpoint::completions ? "/completions" : "/chat/completions");
    r.headers.reserve(4 + spec_.headers.size());
    r.headers.emplace_back("Content-Type", "application/json");
    if (stream) r.headers.emplace_back("Accept", "text/event-stream");
    if (!auth_.empty()) r.headers.emplace_back("Authorization", auth_);
    for (const auto& h : spec_.headers) r.headers.push_back(h);
    return r;
  }

  std::string rebuild(const api::request& req, const call_options& opts, bool stream) const {
    boost::json::object body = req.body;
    if (!opts.upstream_model.empty()) body["model"] = opts.upstream_model;
    if (stream) {
      body["stream"] = true;
      if (spec_.request_usage) {
        auto& so = body["stream_options"];
        if (!so.is_object()) so = boost::json::object{};
        so.as_object()["include_usage"] = true;
      }
    } else {
      body.erase("stream");
      body.erase("stream_options");
    }
    return boost::json::serialize(body);
  }

  awaitable<result<api::usage>> stream(const api::request& req, const call_options& opts,
                                       chunk_sink& sink, call_stats& stats) override {
    int64_t t0 = now_ns();
    auto sent = co_await up_.send(build(req, opts, true), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::openai, stats);

    api::sse_parser parser;
    api::sse_event ev;
    api::usage usage;
    detail::chunk_batch batch;  // every chunk parsed from one read goes to the sink at once
    bool done = false, finished = false;
    while (!done) {
      auto piece = co_await resp.read_some();
      if (!piece) co_return piece.error();
      if (piece->empty()) break;
      if (!parser.feed(*piece))
        co_return make_error(errc::upstream_error, "upstream sent an oversized SSE event", 502);
      batch.clear();
      while (parser.next(ev)) {
        if (ev.done()) {
          done = true;
          break;
        }
        api::chunk& c = batch.add();
        if (auto pr = api::parse_openai_chunk_into(ev.data, c); !pr) {
          // What came before the failure still reaches the client, then the error.
          batch.drop_last();
          if (!batch.empty()) {
            stats.first_byte_sent = true;
            if (!co_await sink.on_chunks(batch.view())) co_return make_error(errc::cancelled, "client disconnected");
          }
          co_return pr.error();
        }
        if (c.usage) usage = *c.usage;
        if (c.finish != api::finish_reason::none) finished = true;
        if (stats.upstream_ttft_ns < 0 && (!c.content.empty() || c.has_tool_calls)) stats.upstream_ttft_ns = now_ns() - t0;
      }
      if (!batch.empty()) {
        stats.first_byte_sent = true;
        if (!co_await sink.on_chunks(batch.view())) co_return make_error(errc::cancelled, "client disconnected");
      }
    }
    if (done) {
      // Drain the end of the chunked body so the connection goes back to the pool.
      for (int i = 0; i < 4; ++i) {
        auto rest = co_await resp.read_some();
        if (!rest || rest->empty()) break;
      }
    } else if (!finished) {
      co_return make_error(errc::upstream_error, "upstream ended the stream early (no [DONE])", 502);
    }
    stats.upstream_total_ns = now_ns() - t0;
    co_return usage;
  }

  awaitable<result<api::response>> complete(const api::request& req, const call_options& opts,
                                            call_stats& stats) override {
    int64_t t0 = now_ns();
    auto sent = co_await up_.send(build(req, opts, false), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::openai, stats);
    auto body = co_await resp.read_all();
    if (!body) co_return body.error();
    auto r = api::parse_openai_response(*body);
    if (!r) co_return make_error(errc::upstream_error, fmt::format("upstream sent an invalid response: {}", r.error().message), 502);
    stats.upstream_total_ns = now_ns() - t0;
    stats.upstream_ttft_ns = stats.upstream_total_ns;
    co_return std::move(*r);
  }

 private:
  deployment_spec spec_;
  http::upstream up_;
  std::string auth_;
};

}  // namespace

result<std::unique_ptr<provider>> make_openai_provider(const deployment_spec& s) {
  auto where = http::parse_base_url(s.base_url.empty() ? "https://api.openai.com/v1" : s.base_url);
  if (!where) return make_error(errc::invalid_request, fmt::format("providers[{}].base_url: {}", s.name, where.error().message));
  return std::unique_ptr<provider>(std::make_unique<openai_provider>(s, std::move(*where)));
}

}  // namespace fp::providers
