// The `openai` provider: any OpenAI-compatible HTTP API (OpenAI, vLLM, SGLang, llama.cpp server,
// Ollama, Groq, ...). The client's body is passed through with only the model replaced and
// stream_options.include_usage added, so fields the gateway does not know still reach the upstream.
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <array>
#include <optional>
#include <vector>

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
    target_chat_ = up_.where().base_path + "/chat/completions";
    target_completions_ = up_.where().base_path + "/completions";
    for (int streamed = 0; streamed < 2; ++streamed) {  // views of the members above (never moved)
      auto& hv = headers_[streamed];
      hv.emplace_back("Content-Type", "application/json");
      if (streamed) hv.emplace_back("Accept", "text/event-stream");
      if (!auth_.empty()) hv.emplace_back("Authorization", auth_);
      for (const auto& h : spec_.headers) hv.emplace_back(h.first, h.second);
    }
  }
  openai_provider(const openai_provider&) = delete;
  openai_provider& operator=(const openai_provider&) = delete;
  std::string_view name() const noexcept override { return spec_.name; }
  std::string_view kind() const noexcept override { return "openai"; }

  // The body to send: the client's bytes as they came when nothing needs to change (the common
  // case: the same model, "stream" as wanted), with stream_options.include_usage spliced in for a
  // stream that lacks it, else rebuilt. Views into req or into `scratch`.
  std::string_view body_for(const api::request& req, const call_options& opts, bool stream, std::string& scratch) const {
    if (auto v = passthrough(req, opts, stream, scratch)) return *v;
    scratch = rebuild(req, opts, stream);
    return scratch;
  }

  std::optional<std::string_view> passthrough(const api::request& req, const call_options& opts, bool stream,
                                              std::string& scratch) const {
    if (req.raw_body.empty()) return std::nullopt;
    if (!opts.upstream_model.empty() && opts.upstream_model != req.model) return std::nullopt;
    const auto& rs = req.raw_stream;
    using st = api::request::raw_stream_fields::state;
    if (!stream) {
      // An explicit "stream":false says the same as no field (clients and SDKs send it on every
      // call); stream_options, or a null stream, still go through the rebuild that drops them.
      if ((rs.stream != st::absent && rs.stream != st::is_false) || rs.has_options) return std::nullopt;
      return std::string_view(req.raw_body);
    }
    if (rs.stream != st::is_true) return std::nullopt;
    if (!spec_.request_usage || rs.include_usage) return std::string_view(req.raw_body);
    if (rs.has_options) return std::nullopt;
    auto brace = req.raw_body.find('{');
    if (brace == std::string::npos) return std::nullopt;
    static constexpr std::string_view usage_opt = "\"stream_options\":{\"include_usage\":true},";
    scratch.clear();
    scratch.reserve(req.raw_body.size() + usage_opt.size());
    scratch.append(req.raw_body, 0, brace + 1).append(usage_opt).append(req.raw_body, brace + 1);
    return std::string_view(scratch);
  }

  // What send() takes: views of this provider's targets and headers and of `body`.
  http::client_request_view request_for(const api::request& req, bool stream, std::string_view body) const {
    http::client_request_view r;
    r.target = req.kind == api::endpoint::completions ? target_completions_ : target_chat_;
    r.headers = headers_[stream ? 1 : 0];
    r.body = body;
    return r;
  }

  std::string rebuild(const api::request& req, const call_options& opts, bool stream) const {
    boost::json::object body = req.body();
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
    const int64_t t0 = stats.started_ns >= 0 ? stats.started_ns : now_ns();
    std::string scratch;
    auto sent = co_await up_.send(request_for(req, true, body_for(req, opts, true, scratch)), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::openai, stats);

    detail::pooled_sse sse;  // parser and event buffers reused across streams
    api::sse_parser& parser = sse.parser();
    api::sse_event& ev = sse.event();  // storage for the events next() cannot return as views
    api::openai_chunk_parser& chunks = sse.chunks();
    api::sse_event_view view;
    api::usage usage;
    detail::chunk_batch batch;  // every chunk parsed from one read goes to the sink at once
    bool done = false, finished = false;
    while (!done) {
      auto piece = co_await resp.read_some();
      if (!piece) co_return piece.error();
      if (piece->empty()) break;
      if (!parser.feed_view(*piece))  // read in place: *piece stays valid until the next read_some()
        co_return make_error(errc::upstream_error, "upstream sent an oversized SSE event", 502);
      batch.clear();
      while (parser.next(ev, view)) {
        if (view.done()) {
          done = true;
          break;
        }
        api::chunk& c = batch.add();
        if (auto pr = chunks.parse_into(view.data, c); !pr) {
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
        // With [DONE] in the same read, these end the stream: the client may get them, [DONE]
        // and the end of the response in one write.
        // (no co_await inside ?: — gcc 12 destroys such temporaries twice)
        bool ok;
        if (done) {
          ok = co_await sink.on_final_chunks(batch.view());
        } else {
          ok = co_await sink.on_chunks(batch.view());
        }
        if (!ok) co_return make_error(errc::cancelled, "client disconnected");
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
    const int64_t t0 = stats.started_ns >= 0 ? stats.started_ns : now_ns();
    std::string scratch;
    auto sent = co_await up_.send(request_for(req, false, body_for(req, opts, false, scratch)), detail::timeouts_of(opts));
    if (!sent) co_return sent.error();
    auto& resp = **sent;
    stats.upstream_ttfb_ns = resp.ttfb_ns();
    stats.status = resp.status();
    if (resp.status() != 200) co_return co_await detail::read_upstream_error(resp, api::wire_format::openai, stats);
    auto got = resp.try_read_all();  // a body already received needs no coroutine
    if (!got) got.emplace(co_await resp.read_all());  // (no co_await inside ?: with gcc 12)
    auto& body = *got;
    if (!body) co_return body.error();
    auto r = api::parse_owned_openai_response(std::move(*body));
    if (!r) co_return make_error(errc::upstream_error, fmt::format("upstream sent an invalid response: {}", r.error().message), 502);
    stats.upstream_total_ns = now_ns() - t0;
    stats.upstream_ttft_ns = stats.upstream_total_ns;
    co_return std::move(*r);
  }

 private:
  deployment_spec spec_;
  http::upstream up_;
  std::string auth_;
  std::string target_chat_, target_completions_;
  std::array<std::vector<http::header_view>, 2> headers_;  // [streamed]
};

}  // namespace

result<std::unique_ptr<provider>> make_openai_provider(const deployment_spec& s) {
  auto where = http::parse_base_url(s.base_url.empty() ? "https://api.openai.com/v1" : s.base_url);
  if (!where) return make_error(errc::invalid_request, fmt::format("providers[{}].base_url: {}", s.name, where.error().message));
  return std::unique_ptr<provider>(std::make_unique<openai_provider>(s, std::move(*where)));
}

}  // namespace fp::providers
