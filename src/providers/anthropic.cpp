// The `anthropic` provider: the Messages API transport. The OpenAI request is translated into a
// /v1/messages body and Anthropic's SSE events back into OpenAI chunks by src/api; this file only
// moves bytes (headers x-api-key and anthropic-version, pooled connection, deadlines).
#include <fmt/format.h>

#include "providers/providers.hpp"
#include "providers/transport_impl.hpp"

namespace fp::providers {

namespace {

using boost::asio::awaitable;

class anthropic_provider final : public provider {
 public:
  anthropic_provider(const deployment_spec& s, http::url_parts where)
      : spec_(s), up_(std::move(where), http::upstream_options{s.max_connections, s.max_connections, std::chrono::seconds(60), s.verify_tls}) {}
  std::string_view name() const noexcept override { return spec_.name; }
  std::string_view kind() const noexcept override { return "anthropic"; }

  result<http::client_request> build(const api::request& req, const call_options& opts, bool stream) const {
    if (req.kind != api::endpoint::chat_completions)
      return make_error(errc::unsupported, "the anthropic provider serves only /v1/chat/completions");
    api::request r2 = req;  // the translator reads req.stream
    r2.stream = stream;
    auto body = api::anthropic_request_json(r2, opts.upstream_model);
    if (!body) return body.error();
    http::client_request r;
    r.target = up_.where().base_path + "/messages";
    r.headers.reserve(4 + spec_.headers.size());
    r.headers.emplace_back("Content-Type", "application/json");
    r.headers.emplace_back("anthropic-version", spec_.anthropic_version);
    if (stream) r.headers.emplace_back("Accept", "text/event-stream");
    if (!spec_.api_key.empty()) r.headers.emplace_back("x-api-key", spec_.api_key);
    for (const auto& h : spec_.headers) r.headers.push_back(h);
    r.body = std::move(*body);
    return r;
  }

  awaitable<result<api::usage>> stream(const api::request& req, const call_options& opts,
                                       chunk_sink& sink, call_stats& stats) override {
    int64_t t0 = now_ns();
    auto creq = build(req, opts, true);
    if (!creq) co_return creq.error();
    auto sent = co_await up_.send(std::move(*creq), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::anthropic, stats);

    api::sse_parser parser;
    api::sse_event ev;
    api::anthropic_stream_translator tr(req.model, true);
    std::vector<api::chunk> out;  // every chunk translated from one read goes to the sink at once
    while (!tr.done()) {
      auto piece = co_await resp.read_some();
      if (!piece) co_return piece.error();
      if (piece->empty()) break;
      if (!parser.feed(*piece))
        co_return make_error(errc::upstream_error, "upstream sent an oversized SSE event", 502);
      out.clear();
      while (!tr.done() && parser.next(ev)) {
        size_t before = out.size();
        auto r = tr.on_event(ev.event, ev.data, out);
        if (!r) {  // what came before the failure still reaches the client, then the error
          if (!out.empty()) {
            stats.first_byte_sent = true;
            if (!co_await sink.on_chunks(out)) co_return make_error(errc::cancelled, "client disconnected");
          }
          co_return r.error();
        }
        for (size_t i = before; i < out.size(); ++i)
          if (stats.upstream_ttft_ns < 0 && (!out[i].content.empty() || out[i].has_tool_calls))
            stats.upstream_ttft_ns = now_ns() - t0;
      }
      if (!out.empty()) {
        stats.first_byte_sent = true;
        if (!co_await sink.on_chunks(out)) co_return make_error(errc::cancelled, "client disconnected");
      }
    }
    if (!tr.done()) co_return make_error(errc::upstream_error, "upstream ended the stream early (no message_stop)", 502);
    for (int i = 0; i < 4; ++i) {  // drain the end of the body so the connection is reused
      auto rest = co_await resp.read_some();
      if (!rest || rest->empty()) break;
    }
    stats.upstream_total_ns = now_ns() - t0;
    co_return tr.final_usage();
  }

  awaitable<result<api::response>> complete(const api::request& req, const call_options& opts,
                                            call_stats& stats) override {
    int64_t t0 = now_ns();
    auto creq = build(req, opts, false);
    if (!creq) co_return creq.error();
    auto sent = co_await up_.send(std::move(*creq), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::anthropic, stats);
    auto body = co_await resp.read_all();
    if (!body) co_return body.error();
    auto r = api::anthropic_response_to_openai(*body, req.model);
    if (!r) co_return make_error(errc::upstream_error, fmt::format("upstream sent an invalid response: {}", r.error().message), 502);
    stats.upstream_total_ns = now_ns() - t0;
    stats.upstream_ttft_ns = stats.upstream_total_ns;
    co_return std::move(*r);
  }

 private:
  deployment_spec spec_;
  http::upstream up_;
};

}  // namespace

result<std::unique_ptr<provider>> make_anthropic_provider(const deployment_spec& s) {
  auto where = http::parse_base_url(s.base_url.empty() ? "https://api.anthropic.com/v1" : s.base_url);
  if (!where) return make_error(errc::invalid_request, fmt::format("providers[{}].base_url: {}", s.name, where.error().message));
  return std::unique_ptr<provider>(std::make_unique<anthropic_provider>(s, std::move(*where)));
}

}  // namespace fp::providers
