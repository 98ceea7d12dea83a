// The in-process mock provider: plays a mock_plan with timers on the caller's executor.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include <chrono>

#include "providers/mock.hpp"

namespace fp::providers {

namespace {

namespace asio = boost::asio;

class mock_provider final : public provider {
 public:
  mock_provider(deployment_spec s, mock_profile p) : spec_(std::move(s)), profile_(std::move(p)) {}
  std::string_view name() const noexcept override { return spec_.name; }
  std::string_view kind() const noexcept override { return "mock"; }

  asio::awaitable<result<api::usage>> stream(const api::request& req, const call_options& opts, chunk_sink& sink,
                                             call_stats& stats) override {
    auto ov = mock_overrides_from_body(req.body());
    if (!ov) co_return ov.error();
    std::string prompt, last_user;
    auto view = mock_view_of_openai(req, prompt, last_user);
    uint64_t seq = seq_.fetch_add(1, std::memory_order_relaxed);
    auto plan = make_mock_plan(profile_, spec_.seed ? spec_.seed : 1, seq, view, *ov);
    const int64_t t0 = now_ns();
    asio::steady_timer timer(co_await asio::this_coro::executor);

    // Waits ns (bounded by limit_ns); false when cancelled. timed_out set when the limit cut it.
    bool timed_out = false;
    auto wait = [&](int64_t ns, int64_t limit_ns) -> asio::awaitable<bool> {
      auto cs = co_await asio::this_coro::cancellation_state;
      if (cs.cancelled() != asio::cancellation_type::none) co_return false;
      if (limit_ns > 0 && ns > limit_ns) {
        ns = limit_ns;
        timed_out = true;
      }
      if (ns <= 0) co_return true;
      timer.expires_after(std::chrono::nanoseconds(ns));
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      co_return !ec;
    };
    auto ns_of = [](std::chrono::milliseconds ms) { return static_cast<int64_t>(ms.count()) * 1000000; };
    auto cancelled = [] { return make_error(errc::cancelled, "the client went away"); };
    auto timeout = [](std::string_view what) {
      return make_error(errc::upstream_timeout, fmt::format("mock upstream: {} timeout", what));
    };

    if (plan.error_status) {
      stats.status = plan.error_status;
      if (plan.error_status == 429) stats.retry_after_s = 1;
      co_return make_error(plan.error_status == 429 ? errc::rate_limited : errc::upstream_error,
                           fmt::format("mock upstream: injected HTTP {}", plan.error_status), plan.error_status);
    }
    if (!co_await wait(plan.ttft_ns, ns_of(opts.first_byte_timeout))) co_return cancelled();
    if (timed_out) co_return timeout("first byte");
    stats.status = 200;
    stats.upstream_ttfb_ns = now_ns() - t0;

    api::chunk_meta meta;
    meta.id = fmt::format("{}-mock{}", req.kind == api::endpoint::completions ? "cmpl" : "chatcmpl", seq);
    meta.created = system_clock::instance().wall_ms() / 1000;
    meta.model = opts.upstream_model.empty() ? req.model : opts.upstream_model;
    const bool chat = req.kind == api::endpoint::chat_completions;
    auto emit = [&](const api::chunk& c) -> asio::awaitable<bool> {
      bool ok = co_await sink.on_chunk(c);
      stats.first_byte_sent = true;
      co_return ok;
    };
    if (chat) {
      api::chunk_delta d;
      d.role = "assistant";
      d.content = "";
      auto c = api::make_chat_chunk(meta, d);
      if (!co_await emit(c)) co_return cancelled();
    }
    const int64_t gap_limit = ns_of(opts.chunk_gap_timeout);
    const int64_t n = static_cast<int64_t>(plan.tokens.size());
    for (int64_t i = 0; i < n; ++i) {
      if (i == plan.error_after) {
        co_return make_error(errc::upstream_error, "mock upstream: injected mid-stream error", 500);
      }
      if (i == plan.stall_after) {
        if (!co_await wait(plan.stall_ns, gap_limit)) co_return cancelled();
        if (timed_out) co_return timeout("chunk gap");
      }
      if (i > 0) {
        if (!co_await wait(plan.gaps_ns[i - 1], gap_limit)) co_return cancelled();
        if (timed_out) co_return timeout("chunk gap");
      }
      if (ns_of(opts.total_timeout) > 0 && now_ns() - t0 > ns_of(opts.total_timeout)) co_return timeout("total");
      api::chunk c;
      if (!chat) {
        c = api::make_completion_chunk(meta, plan.tokens[i], api::finish_reason::none);
      } else if (plan.tool_call) {
        api::tool_call_delta td{0, i == 0 ? std::string_view(plan.tool_id) : std::string_view{},
                                i == 0 ? std::string_view(plan.tool_name) : std::string_view{}, plan.tokens[i]};
        api::chunk_delta d;
        d.tool_calls = std::span<const api::tool_call_delta>(&td, 1);
        c = api::make_chat_chunk(meta, d);
      } else {
        api::chunk_delta d;
        d.content = plan.tokens[i];
        c = api::make_chat_chunk(meta, d);
      }
      if (i == 0) stats.upstream_ttft_ns = now_ns() - t0;
      if (!co_await emit(c)) co_return cancelled();
    }
    if (plan.error_after >= n) {
      co_return make_error(errc::upstream_error, "mock upstream: injected mid-stream error", 500);
    }
    api::usage u{plan.prompt_tokens, n, 0};
    if (chat) {
      api::chunk_delta d;
      d.finish = plan.finish;
      auto c = api::make_chat_chunk(meta, d);
      if (!co_await emit(c)) co_return cancelled();
    } else {
      auto c = api::make_completion_chunk(meta, "", plan.finish);
      if (!co_await emit(c)) co_return cancelled();
    }
    if (req.include_usage) {
      auto c = api::make_usage_chunk(meta, u, req.kind);
      if (!co_await emit(c)) co_return cancelled();
    }
    stats.upstream_total_ns = now_ns() - t0;
    co_return u;
  }

  asio::awaitable<result<api::response>> complete(const api::request& req, const call_options& opts,
                                                  call_stats& stats) override {
    co_return co_await complete_via_stream(*this, req, opts, stats);
  }

 private:
  deployment_spec spec_;
  mock_profile profile_;
  std::atomic<uint64_t> seq_{0};
};

}  // namespace

result<std::unique_ptr<provider>> make_mock_provider(const deployment_spec& s) {
  auto p = find_mock_profile(s.profile.empty() ? "zero" : s.profile);
  if (!p) return make_error(errc::invalid_request, fmt::format("providers[{}].profile: {}", s.name, p.error().message));
  return std::unique_ptr<provider>(std::make_unique<mock_provider>(s, std::move(*p)));
}

}  // namespace fp::providers
