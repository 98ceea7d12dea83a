// The gateway integration: a request stage (per-key rate limits, routing aliases resolved by the
// complexity scorer) and a router (latency-aware balancing with circuit breakers or prefix
// affinity, retries and fallbacks before the first byte within a budget, hedged requests).
//
// First-byte buffering: every upstream attempt streams into its own attempt_sink, which holds the
// chunks until the first content chunk. The first attempt to produce content wins: it cancels the
// other attempt at once (asio per-operation cancellation), flushes its buffer to the client and
// streams on. Until a winner exists nothing reached the client, so a failure is invisible and can
// be retried elsewhere; after it, a failure ends the client's stream with an error event.
//
// Threading: the gateway runs one io_context per thread; a request and its attempts stay on the
// request's executor. Shared state (health, budgets, limiter) is mutex-protected.
#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "gateway/gateway.hpp"
#include "metrics/metrics.hpp"
#include "routing/routing.hpp"
#include "routing/router.hpp"
#ifdef FASTPATH_HAVE_REDIS
#include "redis/redis.hpp"
#endif

namespace fp::routing {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

// ---- request text extraction ------------------------------------------------------------------------

namespace {

void append_content(std::string& out, const json::value& c) {
  if (c.is_string()) {
    out += c.as_string();
  } else if (c.is_array()) {
    for (const auto& b : c.as_array())
      if (b.is_object())
        if (auto t = b.as_object().if_contains("text"); t && t->is_string()) {
          if (!out.empty()) out += '\n';
          out += t->as_string();
        }
  }
}

}  // namespace

request_text extract_request_text(const json::object& body) {
  request_text rt;
  if (auto m = body.if_contains("messages"); m && m->is_array()) {
    const auto& msgs = m->as_array();
    size_t last_user = msgs.size();
    for (size_t i = 0; i < msgs.size(); ++i) {
      if (!msgs[i].is_object()) continue;
      const auto& o = msgs[i].as_object();
      auto r = o.if_contains("role");
      std::string_view role = r && r->is_string() ? std::string_view(r->as_string()) : "";
      auto c = o.if_contains("content");
      if (role == "user") last_user = i;
      if (role == "user" || role == "assistant") ++rt.turns;
      if ((role == "system" || role == "developer") && c) {
        if (!rt.system.empty()) rt.system += '\n';
        append_content(rt.system, *c);
      }
      if (c) {
        if (c->is_string()) rt.prompt_chars += c->as_string().size();
        else rt.prompt_chars += json::serialize(*c).size();
      }
    }
    if (last_user < msgs.size())
      if (auto c = msgs[last_user].as_object().if_contains("content")) append_content(rt.last_user, *c);
  } else if (auto p = body.if_contains("prompt"); p && p->is_string()) {
    rt.last_user = std::string(p->as_string());
    rt.prompt_chars = rt.last_user.size();
    rt.turns = 1;
  }
  if (auto t = body.if_contains("tools"); t && t->is_array()) rt.tools = static_cast<int>(t->as_array().size());
  else if (auto f = body.if_contains("functions"); f && f->is_array()) rt.tools = static_cast<int>(f->as_array().size());
  if (rt.turns == 0) rt.turns = 1;
  return rt;
}

// ---- shared state -----------------------------------------------------------------------------------

namespace {

struct routing_metrics {
  metrics::counter* retries;
  metrics::counter* retries_denied;
  metrics::counter* fallbacks;
  metrics::counter* hedges;
  metrics::counter* hedges_denied;
  metrics::counter* hedge_wins;
  metrics::counter* rate_limited;
  metrics::counter* limiter_errors;
  metrics::counter* requests;
};

routing_metrics make_metrics() {
  return {
      &metrics::get_counter("fastpath_routing_retries_total", "Upstream retries and fallbacks before the first byte"),
      &metrics::get_counter("fastpath_routing_retries_denied_total", "Retries refused by the retry budget"),
      &metrics::get_counter("fastpath_routing_fallbacks_total", "Requests moved to the next model of a fallback chain"),
      &metrics::get_counter("fastpath_routing_hedges_total", "Hedged (second) upstream requests started"),
      &metrics::get_counter("fastpath_routing_hedges_denied_total", "Hedges refused by the hedge budget"),
      &metrics::get_counter("fastpath_routing_hedge_wins_total", "Requests answered by the hedge"),
      &metrics::get_counter("fastpath_rate_limited_total", "Requests refused with 429 by the per-key rate limits"),
      &metrics::get_counter("fastpath_rate_limiter_errors_total", "Rate limiter backend failures (request allowed)"),
      &metrics::get_counter("fastpath_routing_requests_total", "Requests handled by the router"),
  };
}

}  // namespace

struct routing_engine::impl {
  routing_config cfg;
  complexity_scorer scorer;
  budget retry_budget;
  budget hedge_budget;
  p2c_balancer balancer;
  local_rate_limiter local_limiter;
#ifdef FASTPATH_HAVE_REDIS
  std::unique_ptr<redis_rate_limiter> redis_limiter;
#endif
  lookup_fn lookup;
  const clock* clk;
  routing_metrics m = make_metrics();

  std::shared_mutex mu;
  std::map<std::string, std::unique_ptr<deployment_health>, std::less<>> health;
  std::map<std::string, std::unique_ptr<affinity_ring>, std::less<>> rings;  // by model
  std::mutex metric_mu;
  std::map<std::string, metrics::counter*, std::less<>> attempt_counters;
  std::map<std::string, metrics::counter*, std::less<>> decision_counters;
  std::map<std::string, std::pair<metrics::counter*, metrics::counter*>, std::less<>> usage_counters;

  impl(routing_config c, lookup_fn l, const clock* k)
      : cfg(std::move(c)),
        scorer(cfg.scorer),
        retry_budget(cfg.retries.budget, k->now_ns()),
        hedge_budget(cfg.hedging.budget, k->now_ns()),
        lookup(std::move(l)),
        clk(k) {}

  int64_t now() const noexcept { return clk->now_ns(); }

  deployment_health& health_of(std::string_view name) {
    {
      std::shared_lock lk(mu);
      auto it = health.find(name);
      if (it != health.end()) return *it->second;
    }
    std::unique_lock lk(mu);
    auto it = health.find(name);
    if (it == health.end())
      it = health.emplace(std::string(name), std::make_unique<deployment_health>(cfg.health)).first;
    return *it->second;
  }

  const affinity_ring& ring_of(std::string_view model, std::span<const gateway::deployment> ds) {
    {
      std::shared_lock lk(mu);
      auto it = rings.find(model);
      if (it != rings.end() && it->second->replicas() == ds.size()) return *it->second;
    }
    std::vector<std::string> names;
    for (const auto& d : ds) names.emplace_back(d.p->name());
    std::unique_lock lk(mu);
    auto& slot = rings[std::string(model)];
    if (!slot || slot->replicas() != ds.size()) slot = std::make_unique<affinity_ring>(names);
    return *slot;
  }

  metrics::counter& attempts_counter(std::string_view deployment, std::string_view outcome) {
    std::string key = fmt::format("{}\x1f{}", deployment, outcome);
    std::lock_guard lk(metric_mu);
    auto it = attempt_counters.find(key);
    if (it != attempt_counters.end()) return *it->second;
    auto& c = metrics::get_counter("fastpath_routing_attempts_total",
                                   "Upstream attempts by deployment and outcome (ok, error, rate_limited, cancelled)",
                                   {{"deployment", std::string(deployment)}, {"outcome", std::string(outcome)}});
    attempt_counters.emplace(std::move(key), &c);
    return c;
  }

  metrics::counter& decision_counter(std::string_view alias, std::string_view tier) {
    std::string key = fmt::format("{}\x1f{}", alias, tier);
    std::lock_guard lk(metric_mu);
    auto it = decision_counters.find(key);
    if (it != decision_counters.end()) return *it->second;
    auto& c = metrics::get_counter("fastpath_routing_decisions_total", "Routing-alias decisions by tier",
                                   {{"alias", std::string(alias)}, {"tier", std::string(tier)}});
    decision_counters.emplace(std::move(key), &c);
    return c;
  }

  void count_usage(std::string_view model, std::string_view deployment, const api::usage& u) {
    std::string key = fmt::format("{}\x1f{}", model, deployment);
    std::pair<metrics::counter*, metrics::counter*> cs;
    {
      std::lock_guard lk(metric_mu);
      auto it = usage_counters.find(key);
      if (it == usage_counters.end()) {
        metrics::labels l{{"model", std::string(model)}, {"provider", std::string(deployment)}};
        cs = {&metrics::get_counter("fastpath_upstream_prompt_tokens_total", "Prompt tokens reported by upstreams", l),
              &metrics::get_counter("fastpath_upstream_cached_prompt_tokens_total",
                                    "Prompt tokens served from the upstream's prompt cache", l)};
        usage_counters.emplace(std::move(key), cs);
      } else {
        cs = it->second;
      }
    }
    if (u.prompt_tokens > 0) cs.first->inc(static_cast<uint64_t>(u.prompt_tokens));
    if (u.cached_prompt_tokens > 0) cs.second->inc(static_cast<uint64_t>(u.cached_prompt_tokens));
  }

  rate_limit limit_for(std::string_view id) const {
    for (const auto& [k, l] : cfg.rate_limits.keys)
      if (k == id) return l;
    return cfg.rate_limits.defaults;
  }
  bool limits_enabled() const {
    if (!cfg.rate_limits.defaults.unlimited()) return true;
    for (const auto& [k, l] : cfg.rate_limits.keys)
      if (!l.unlimited()) return true;
    return false;
  }
  int64_t charge_of(const gateway::request_context& ctx, const request_text& rt) const {
    int64_t out = ctx.req.max_tokens ? *ctx.req.max_tokens : cfg.rate_limits.default_output_tokens;
    return static_cast<int64_t>(rt.prompt_chars / 4) + std::max<int64_t>(out, 0);
  }
};

// ---- the request stage --------------------------------------------------------------------------------

namespace {

// Access-log fields: the gateway's request_context carries extra access-log fields when built
// with that seam; without it the decision is still in the x-fastpath-route header.
template <class C>
void log_field(C& ctx, std::string_view k, std::string v) {
  if constexpr (requires { ctx.log_fields.emplace_back(std::string(k), std::move(v)); })
    ctx.log_fields.emplace_back(std::string(k), std::move(v));
}

void add_or_extend_header(http::header_list& h, std::string_view name, std::string_view value) {
  for (auto& kv : h)
    if (kv.first == name) {
      kv.second += ' ';
      kv.second += value;
      return;
    }
  h.emplace_back(std::string(name), std::string(value));
}

class routing_stage final : public gateway::request_stage {
 public:
  explicit routing_stage(std::shared_ptr<routing_engine::impl> e) : e_(std::move(e)) {}

  awaitable<result<void>> on_request(gateway::request_context& ctx) override {
    auto& e = *e_;
    const auto* alias = e.cfg.find_alias(ctx.req.model);
    if (!alias && !e.limits_enabled()) co_return result<void>{};
    request_text rt = extract_request_text(ctx.req.body());

    if (e.limits_enabled()) {
      std::string id = key_id(ctx.api_key.empty() ? std::string_view("anonymous") : std::string_view(ctx.api_key));
      rate_limit lim = e.limit_for(id);
      int64_t charge = e.charge_of(ctx, rt);
      rate_decision d;
#ifdef FASTPATH_HAVE_REDIS
      if (e.redis_limiter) d = co_await e.redis_limiter->acquire(id, lim, charge);
      else
#endif
        d = e.local_limiter.acquire(id, lim, charge, e.now());
      if (!d.allowed) {
        e.m.rate_limited->inc();
        int64_t secs = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(d.retry_after_s)));
        ctx.response_headers.emplace_back("Retry-After", std::to_string(secs));
        co_return make_error(errc::rate_limited,
                             fmt::format("rate limit exceeded ({} per minute); retry after {} s", d.limit, secs));
      }
    }

    if (alias) {
      score_input in;
      in.text = rt.last_user;
      in.system = rt.system;
      in.turns = rt.turns;
      in.tools = rt.tools;
      auto s = e.scorer.score(in);
      const tier& t = alias->tiers.pick(s.score);
      e.decision_counter(alias->name, t.name).inc();
      ctx.req.model = t.model;
      ctx.req.mutable_body()["model"] = t.model;  // (raw_body no longer says the same: cleared)
      if (e.cfg.route_header)
        add_or_extend_header(ctx.response_headers, "x-fastpath-route",
                             fmt::format("model={} score={:.2f} reasons={}", t.model, s.score, s.reasons_joined()));
      log_field(ctx, "route_alias", alias->name);
      log_field(ctx, "route_score", fmt::format("{:.3f}", s.score));
      log_field(ctx, "route_tier", t.name);
      log_field(ctx, "route_reasons", s.reasons_joined());
    }
    co_return result<void>{};
  }

 private:
  std::shared_ptr<routing_engine::impl> e_;
};

// ---- the router ---------------------------------------------------------------------------------------

bool retryable(const error& err) {
  if (err.code == errc::cancelled || err.code == errc::invalid_request || err.code == errc::unsupported ||
      err.code == errc::unauthorized || err.code == errc::not_found)
    return false;
  int s = err.status();
  return s == 429 || s >= 500 || err.code == errc::upstream_unreachable || err.code == errc::upstream_timeout;
}

bool is_rate_limited(const error& err, const providers::call_stats& st) {
  return err.status() == 429 || st.status == 429 || err.code == errc::rate_limited;
}

struct attempt {
  int slot = 0;    // 0 primary, 1 hedge
  int index = -1;  // in the group
  const gateway::deployment* d = nullptr;
  deployment_health* h = nullptr;
  asio::cancellation_signal cancel;
  bool done = false;
  bool won = false;
  int64_t start_ns = 0;
  int64_t first_ns = -1;
  result<api::usage> r = make_error(errc::internal, "attempt not finished");
  providers::call_stats stats;
  std::vector<api::chunk> buffered;
};

// Everything an attempt needs, owned jointly by the router frame and the attempt coroutines (so an
// attempt finishing after the router returned never touches freed memory).
struct race {
  explicit race(asio::any_io_executor ex) : wake(ex) {}
  asio::steady_timer wake;
  attempt slots[2];
  int started = 0;
  int winner = -1;
  bool client_gone = false;
  std::function<void(attempt&)> on_win;  // set by the router; runs before the flush
  providers::chunk_sink* client = nullptr;
};

class attempt_sink final : public providers::chunk_sink {
 public:
  attempt_sink(std::shared_ptr<race> r, int me, const clock* clk) : r_(std::move(r)), me_(me), clk_(clk) {}

  awaitable<bool> on_chunk(const api::chunk& c) override { co_return co_await on_chunks(std::span(&c, 1)); }

  // Until the race is decided, chunks are held; the first content chunk claims the win and
  // everything held goes to the client in one piece. A loser stops at once.
  awaitable<bool> on_chunks(std::span<const api::chunk> cs) override {
    race& R = *r_;
    if (R.winner >= 0 && R.winner != me_) co_return false;  // lost the race: stop now
    if (R.client_gone) co_return false;
    if (R.winner == me_) {
      bool ok = co_await R.client->on_chunks(cs);
      if (!ok) R.client_gone = true;
      co_return ok;
    }
    attempt& A = R.slots[me_];
    A.buffered.insert(A.buffered.end(), cs.begin(), cs.end());
    bool content = std::any_of(cs.begin(), cs.end(), [](const api::chunk& c) { return !c.content.empty() || c.has_tool_calls; });
    if (!content) co_return true;
    co_return co_await claim_and_flush();
  }

  // Becomes the winner (first content, or a successful end without content) and flushes.
  awaitable<bool> claim_and_flush() {
    race& R = *r_;
    attempt& A = R.slots[me_];
    R.winner = me_;
    A.won = true;
    A.first_ns = clk_->now_ns();
    A.h->on_first_token(A.first_ns, A.first_ns - A.start_ns);
    for (int i = 0; i < R.started; ++i)
      if (i != me_ && !R.slots[i].done) R.slots[i].cancel.emit(asio::cancellation_type::terminal);
    if (R.on_win) R.on_win(A);
    if (!A.buffered.empty()) {
      bool ok = co_await R.client->on_chunks(A.buffered);
      A.buffered.clear();
      if (!ok) {
        R.client_gone = true;
        co_return false;
      }
    }
    co_return true;
  }

 private:
  std::shared_ptr<race> r_;
  int me_;
  const clock* clk_;
};

awaitable<void> run_attempt(std::shared_ptr<race> R, int me, const api::request& req, const clock* clk) {
  attempt& A = R->slots[me];
  attempt_sink sink(R, me, clk);
  try {
    A.r = co_await A.d->p->stream(req, A.d->opts, sink, A.stats);
    // A successful stream with no content at all (empty answer): it wins if nobody has.
    if (A.r && R->winner < 0) {
      if (!co_await sink.claim_and_flush()) A.r = make_error(errc::cancelled, "client went away");
    }
  } catch (const std::exception& ex) {
    A.r = make_error(errc::internal, fmt::format("router attempt: {}", ex.what()));
  }
  A.done = true;
  R->wake.cancel();
}

class router_impl final : public gateway::router {
 public:
  explicit router_impl(std::shared_ptr<routing_engine::impl> e) : e_(std::move(e)) {}

  awaitable<result<api::usage>> stream(gateway::request_context& ctx, std::span<const gateway::deployment> ds,
                                       providers::chunk_sink& client) override {
    co_await asio::this_coro::throw_if_cancelled(false);
    auto& e = *e_;
    e.m.requests->inc();
    const int64_t t_start = e.now();
    e.retry_budget.on_request(t_start);
    if (e.cfg.hedging.enabled) e.hedge_budget.on_request(t_start);

    std::vector<std::string> chain{ctx.req.model};
    if (const auto* g = e.cfg.find_model(ctx.req.model))
      for (const auto& f : g->fallbacks) chain.push_back(f);

    result<api::usage> last = make_error(errc::not_found, fmt::format("no deployment for `{}`", ctx.req.model));
    int attempts = 0;
    bool hedged_any = false;
    bool retry_paid = false;
    for (size_t ci = 0; ci < chain.size(); ++ci) {
      std::span<const gateway::deployment> group = ci == 0 ? ds : e.lookup(chain[ci]);
      if (group.empty()) continue;
      if (ci > 0) {
        if (attempts >= e.cfg.retries.max_attempts) break;
        e.m.fallbacks->inc();
      }
      const model_group* mg = e.cfg.find_model(chain[ci]);
      std::vector<uint8_t> excluded(group.size(), 0);
      uint64_t pkey = 0;
      if (mg && mg->mode == balance_mode::prefix_affinity)
        pkey = prefix_key(ctx.req.body(), e.cfg.affinity.prefix_bytes, e.cfg.affinity.min_bytes);

      for (;;) {
        if (attempts >= e.cfg.retries.max_attempts) co_return finish(ctx, last, attempts, hedged_any);
        int64_t now = e.now();
        int k = pick(chain[ci], group, mg, pkey, excluded, now);
        if (k < 0) {
          // Every deployment is tried, broken or cooling down after a 429: wait for the earliest
          // Retry-After when it is short, else fall back to the next model.
          int64_t wait_ns = earliest_cooldown(group, excluded, now);
          if (wait_ns <= 0 || wait_ns > static_cast<int64_t>(e.cfg.retries.max_retry_after_s * 1e9)) break;
          if (!e.retry_budget.try_withdraw(now)) {
            e.m.retries_denied->inc();
            co_return finish(ctx, last, attempts, hedged_any);
          }
          asio::steady_timer t(co_await asio::this_coro::executor);
          t.expires_after(std::chrono::nanoseconds(wait_ns));
          co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
          auto cs = co_await asio::this_coro::cancellation_state;
          if (cs.cancelled() != asio::cancellation_type::none)
            co_return finish(ctx, make_error(errc::cancelled, "client went away"), attempts, hedged_any);
          retry_paid = true;  // the withdrawn budget pays for the next attempt
          ++attempts;         // a wait counts as an attempt: bounded by max_attempts
          continue;
        }
        if (attempts > 0 && !retry_paid) {
          if (!e.retry_budget.try_withdraw(now)) {
            e.m.retries_denied->inc();
            co_return finish(ctx, last, attempts, hedged_any);
          }
        }
        retry_paid = false;
        if (attempts > 0) e.m.retries->inc();
        ++attempts;

        auto out = co_await run_race(ctx, chain[ci], group, mg, pkey, excluded, k, client, attempts);
        hedged_any |= out.hedged;
        if (out.won) co_return finish(ctx, std::move(out.r), attempts, hedged_any);
        result<api::usage> r = std::move(out.r);
        last = r;
        if (!r) {
          if (r.error().code == errc::cancelled) co_return finish(ctx, r, attempts, hedged_any);
          if (!retryable(r.error())) co_return finish(ctx, r, attempts, hedged_any);
        }
      }
    }
    co_return finish(ctx, last, attempts, hedged_any);
  }

  awaitable<result<api::response>> complete(gateway::request_context& ctx,
                                            std::span<const gateway::deployment> ds) override {
    auto& e = *e_;
    e.m.requests->inc();
    e.retry_budget.on_request(e.now());
    std::vector<std::string> chain{ctx.req.model};
    if (const auto* g = e.cfg.find_model(ctx.req.model))
      for (const auto& f : g->fallbacks) chain.push_back(f);
    result<api::response> last = make_error(errc::not_found, fmt::format("no deployment for `{}`", ctx.req.model));
    int attempts = 0;
    for (size_t ci = 0; ci < chain.size(); ++ci) {
      std::span<const gateway::deployment> group = ci == 0 ? ds : e.lookup(chain[ci]);
      if (group.empty()) continue;
      if (ci > 0) e.m.fallbacks->inc();
      const model_group* mg = e.cfg.find_model(chain[ci]);
      std::vector<uint8_t> excluded(group.size(), 0);
      uint64_t pkey = 0;
      if (mg && mg->mode == balance_mode::prefix_affinity)
        pkey = prefix_key(ctx.req.body(), e.cfg.affinity.prefix_bytes, e.cfg.affinity.min_bytes);
      for (;;) {
        if (attempts >= e.cfg.retries.max_attempts) co_return last;
        int64_t now = e.now();
        int k = pick(chain[ci], group, mg, pkey, excluded, now);
        if (k < 0) break;
        if (attempts > 0 && !e.retry_budget.try_withdraw(now)) {
          e.m.retries_denied->inc();
          co_return last;
        }
        if (attempts > 0) e.m.retries->inc();
        ++attempts;
        const auto& d = group[static_cast<size_t>(k)];
        auto& h = e.health_of(d.p->name());
        if (!h.try_start(now)) {
          excluded[static_cast<size_t>(k)] = 1;
          continue;
        }
        note(ctx, d, chain[ci]);
        ctx.stats = {};
        int64_t t0 = e.now();
        auto r = co_await d.p->complete(ctx.req, d.opts, ctx.stats);
        int64_t t1 = e.now();
        if (r) {
          int64_t toks = r->usage ? r->usage->completion_tokens : 0;
          h.on_first_token(t1, ctx.stats.upstream_ttft_ns >= 0 ? ctx.stats.upstream_ttft_ns : t1 - t0);
          h.on_success(t1, ctx.stats.upstream_ttft_ns >= 0 ? ctx.stats.upstream_ttft_ns : t1 - t0, toks, t1 - t0);
          e.attempts_counter(d.p->name(), "ok").inc();
          if (r->usage) e.count_usage(chain[ci], d.p->name(), *r->usage);
          set_route_header(ctx, d, attempts, false);
          co_return r;
        }
        record_failure(h, d, r.error(), ctx.stats, t1);
        excluded[static_cast<size_t>(k)] = 1;
        last = r;
        if (!retryable(r.error())) co_return last;
      }
    }
    co_return last;
  }

 private:
  int pick(std::string_view model, std::span<const gateway::deployment> group, const model_group* mg,
           uint64_t pkey, const std::vector<uint8_t>& excluded, int64_t now) {
    auto& e = *e_;
    if (pkey != 0 && group.size() > 1) {
      std::vector<int> loads(group.size());
      std::vector<uint8_t> usable(group.size());
      for (size_t i = 0; i < group.size(); ++i) {
        auto& h = e.health_of(group[i].p->name());
        auto s = h.snapshot(now);
        loads[i] = s.in_flight;
        usable[i] = !excluded[i] && h.admits(now);
      }
      return e.ring_of(model, group).pick(pkey, loads, e.cfg.affinity.load_factor, usable);
    }
    std::vector<candidate> cands(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      cands[i].health = &e.health_of(group[i].p->name());
      cands[i].weight = weight_of(mg, group[i]);
    }
    return e.balancer.pick(cands, now, 64, excluded);
  }

  static double weight_of(const model_group* mg, const gateway::deployment& d) {
    if (mg)
      for (const auto& r : mg->deployments)
        if (r.name == d.p->name()) return r.weight;
    return 1.0;
  }

  int64_t earliest_cooldown(std::span<const gateway::deployment> group, const std::vector<uint8_t>& excluded,
                            int64_t now) {
    int64_t best = -1;
    for (size_t i = 0; i < group.size(); ++i) {
      auto& h = e_->health_of(group[i].p->name());
      int64_t until = h.cooldown_until_ns();
      if (until > now && (best < 0 || until - now < best)) best = until - now;
    }
    (void)excluded;
    return best;
  }

  void note(gateway::request_context& ctx, const gateway::deployment& d, std::string_view model) {
    if (ctx.t.upstream_start_ns < 0) ctx.t.upstream_start_ns = now_ns();
    ctx.provider = std::string(d.p->name());
    ctx.upstream_model = d.opts.upstream_model.empty() ? std::string(model) : d.opts.upstream_model;
  }

  void set_route_header(gateway::request_context& ctx, const gateway::deployment& d, int attempts, bool hedged) {
    if (!e_->cfg.route_header) return;
    add_or_extend_header(ctx.response_headers, "x-fastpath-route",
                         fmt::format("deployment={} attempts={}{}", d.p->name(), attempts, hedged ? " hedged=1" : ""));
  }

  void record_failure(deployment_health& h, const gateway::deployment& d, const error& err,
                      const providers::call_stats& st, int64_t now) {
    if (err.code == errc::cancelled) {
      h.on_abandon();
      e_->attempts_counter(d.p->name(), "cancelled").inc();
    } else if (is_rate_limited(err, st)) {
      h.on_rate_limited(now, st.retry_after_s);
      e_->attempts_counter(d.p->name(), "rate_limited").inc();
    } else {
      h.on_failure(now);
      e_->attempts_counter(d.p->name(), "error").inc();
    }
  }

  result<api::usage> finish(gateway::request_context& ctx, result<api::usage> r, int attempts, bool hedged) {
    log_field(ctx, "route_attempts", std::to_string(attempts));
    if (hedged) log_field(ctx, "route_hedged", "1");
    return r;
  }

  int64_t hedge_delay_ns(deployment_health& h) const {
    const auto& hc = e_->cfg.hedging;
    double ms = static_cast<double>(hc.delay_ms);
    if (ms <= 0) {
      double p95 = h.p95_ttft_ms();
      ms = p95 > 0 ? p95 : static_cast<double>(hc.default_delay_ms);
    }
    ms = std::max(ms, static_cast<double>(hc.min_delay_ms));
    return static_cast<int64_t>(ms * 1e6);
  }

  struct race_outcome {
    result<api::usage> r = make_error(errc::internal, "race not run");
    bool won = false;     // a winner's first content reached the client: the result is final
    bool hedged = false;
  };

  // One primary attempt on group[k], plus at most one hedge.
  awaitable<race_outcome> run_race(gateway::request_context& ctx, const std::string& model,
                                   std::span<const gateway::deployment> group, const model_group* mg,
                                   uint64_t pkey, std::vector<uint8_t>& excluded, int k,
                                   providers::chunk_sink& client, int attempt_no) {
    auto& e = *e_;
    race_outcome out;
    bool& hedged = out.hedged;
    auto ex = co_await asio::this_coro::executor;
    auto R = std::make_shared<race>(ex);
    R->client = &client;
    // Runs on the winner's first content, before anything is written: the response headers
    // (x-fastpath-route) go out with the stream head. Captures only what outlives the flush.
    R->on_win = [this, &ctx, model, attempt_no](attempt& A) {
      note(ctx, *A.d, model);
      set_route_header(ctx, *A.d, attempt_no, A.slot == 1);
    };

    auto start = [&](int slot, int idx) -> bool {
      const auto& d = group[static_cast<size_t>(idx)];
      auto& h = e.health_of(d.p->name());
      int64_t now = e.now();
      if (!h.try_start(now)) return false;
      attempt& A = R->slots[slot];
      A.slot = slot;
      A.index = idx;
      A.d = &d;
      A.h = &h;
      A.start_ns = now;
      excluded[static_cast<size_t>(idx)] = 1;
      R->started = slot + 1;
      if (ctx.t.upstream_start_ns < 0) ctx.t.upstream_start_ns = now_ns();
      // The completion handler holds the race too: co_spawn still uses the cancellation slot (owned
      // by A.cancel) after the coroutine body returned, so the race must outlive the handler.
      asio::co_spawn(ex, run_attempt(R, slot, ctx.req, e.clk),
                     asio::bind_cancellation_slot(A.cancel.slot(), [keep = R](std::exception_ptr) {}));
      return true;
    };

    if (!start(0, k)) {
      out.r = make_error(errc::upstream_unreachable, "deployment not admitted (circuit open)", 503);
      co_return out;
    }
    bool hedge_possible = e.cfg.hedging.enabled && group.size() > 1;
    int64_t hedge_at = hedge_possible ? R->slots[0].start_ns + hedge_delay_ns(*R->slots[0].h) : 0;
    bool hedge_done = !hedge_possible;
    bool cancelled = false;

    for (;;) {
      bool all_done = true;
      for (int i = 0; i < R->started; ++i) all_done &= R->slots[i].done;
      if (all_done) break;
      // Wait for an attempt to finish, or for the hedge time.
      bool hedge_pending = !hedge_done && R->winner < 0 && !cancelled;
      if (hedge_pending) {
        int64_t now = e.now();
        R->wake.expires_after(std::chrono::nanoseconds(std::max<int64_t>(0, hedge_at - now)));
      } else {
        R->wake.expires_after(std::chrono::hours(24));
      }
      auto [ec] = co_await R->wake.async_wait(asio::as_tuple(asio::use_awaitable));
      auto cs = co_await asio::this_coro::cancellation_state;
      if (!cancelled && cs.cancelled() != asio::cancellation_type::none) {
        // The client went away: stop every attempt and wait for them to end.
        cancelled = true;
        R->client_gone = true;
        for (int i = 0; i < R->started; ++i)
          if (!R->slots[i].done) R->slots[i].cancel.emit(asio::cancellation_type::terminal);
        continue;
      }
      if (!ec && hedge_pending && R->winner < 0 && !R->slots[0].done) {
        hedge_done = true;
        int64_t now = e.now();
        int k2 = pick(model, group, mg, pkey, excluded, now);
        if (k2 >= 0) {
          if (e.hedge_budget.try_withdraw(now)) {
            if (start(1, k2)) {
              hedged = true;
              e.m.hedges->inc();
            }
          } else {
            e.m.hedges_denied->inc();
          }
        }
      }
    }

    // Verdicts.
    int64_t now = e.now();
    for (int i = 0; i < R->started; ++i) {
      attempt& A = R->slots[i];
      auto name = A.d->p->name();
      if (A.r) {
        api::usage u = *A.r;
        A.h->on_success(now, A.first_ns >= 0 ? A.first_ns - A.start_ns : now - A.start_ns, u.completion_tokens,
                        now - A.start_ns);
        e.attempts_counter(name, "ok").inc();
        e.count_usage(model, name, u);
      } else if (i != R->winner && R->winner >= 0) {
        A.h->on_abandon();  // the hedge loser: cancelled, no verdict on its health
        e.attempts_counter(name, "cancelled").inc();
      } else {
        record_failure(*A.h, *A.d, A.r.error(), A.stats, now);
      }
    }
    if (R->winner >= 0) {
      attempt& W = R->slots[R->winner];
      out.won = true;
      ctx.stats = W.stats;
      ctx.stats.first_byte_sent = true;
      if (R->winner == 1) e.m.hedge_wins->inc();
      out.r = W.r;
      co_return out;
    }
    if (cancelled) {
      out.r = make_error(errc::cancelled, "client went away");
      co_return out;
    }
    // No winner: report the primary's error (the more informative one), stats for the gateway.
    ctx.stats = R->slots[0].stats;
    ctx.stats.first_byte_sent = false;
    out.r = !R->slots[0].r ? R->slots[0].r : R->slots[R->started - 1].r;
    co_return out;
  }

  std::shared_ptr<routing_engine::impl> e_;
};

}  // namespace

// ---- wiring -------------------------------------------------------------------------------------------

routing_engine::routing_engine(routing_config cfg, lookup_fn lookup, const clock* clk)
    : impl_(std::make_shared<impl>(std::move(cfg), std::move(lookup), clk ? clk : &system_clock::instance())) {
  if (impl_->cfg.rate_limits.backend == "redis") {
#ifdef FASTPATH_HAVE_REDIS
    redis::config rc;
    auto p = redis::parse_url(impl_->cfg.rate_limits.redis_url, rc);
    if (!p) throw std::runtime_error("routing.rate_limits.redis_url: " + p.error().message);
    impl_->redis_limiter = std::make_unique<redis_rate_limiter>(std::make_shared<redis::client>(rc));
#else
    throw std::runtime_error("routing.rate_limits.backend: redis is not built into this binary");
#endif
  }
}

routing_engine::~routing_engine() = default;

std::shared_ptr<gateway::request_stage> routing_engine::stage() const {
  return std::make_shared<routing_stage>(impl_);
}
std::shared_ptr<gateway::router> routing_engine::router() const { return std::make_shared<router_impl>(impl_); }
const routing_config& routing_engine::cfg() const noexcept { return impl_->cfg; }
health_snapshot routing_engine::health(std::string_view deployment) const {
  return impl_->health_of(deployment).snapshot(impl_->now());
}

std::shared_ptr<routing_engine> attach(gateway::gateway& gw) {
  const auto& y = gw.cfg().yaml;
  if (!y || !(*y)["routing"]) return nullptr;
  auto cfg = parse_routing_config((*y)["routing"]);
  // A top-level rate_limits section (reserved by the gateway config for this component) wins.
  if ((*y)["rate_limits"]) {
    auto tmp = YAML::Node(YAML::NodeType::Map);
    tmp["rate_limits"] = (*y)["rate_limits"];
    cfg.rate_limits = parse_routing_config(tmp).rate_limits;
  }
  for (const auto& a : cfg.aliases)
    for (const auto& t : a.tiers.tiers)
      if (gw.deployments_of(t.model).empty())
        throw std::runtime_error(fmt::format("routing.aliases.{}: tier model `{}` is not a configured model", a.name,
                                             t.model));
  for (const auto& m : cfg.models)
    if (gw.deployments_of(m.name).empty())
      throw std::runtime_error(fmt::format("routing.models.{}: not a configured model", m.name));
  auto* g = &gw;
  auto eng = std::make_shared<routing_engine>(std::move(cfg), [g](std::string_view m) { return g->deployments_of(m); });
  gw.add_request_stage(eng->stage());
  gw.set_router(eng->router());
  return eng;
}

}  // namespace fp::routing
