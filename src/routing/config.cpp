#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <stdexcept>

#include "routing/routing.hpp"

namespace fp::routing {
namespace {

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw std::runtime_error("routing config: " + where + ": " + what);
}

template <class T>
void get(const YAML::Node& n, const char* key, T& out, const std::string& where) {
  auto v = n[key];
  if (!v) return;
  try {
    out = v.as<T>();
  } catch (const YAML::Exception&) {
    bad(where + "." + key, "wrong type");
  }
}

feature feature_from_name(const std::string& s, const std::string& where) {
  for (size_t i = 0; i < feature_count; ++i) {
    auto f = static_cast<feature>(i);
    if (feature_name(f) == s) return f;
  }
  if (s == "debug") return feature::debug;
  bad(where, "unknown scorer feature '" + s + "'");
}

budget_config parse_budget(const YAML::Node& n, budget_config b, const std::string& where) {
  get(n, "budget_ratio", b.ratio, where);
  get(n, "budget_min_per_second", b.min_per_second, where);
  get(n, "budget_burst", b.cap, where);
  if (b.ratio < 0 || b.min_per_second < 0 || b.cap < 0) bad(where, "budget values must be >= 0");
  return b;
}

rate_limit parse_limit(const YAML::Node& n, const std::string& where) {
  rate_limit l;
  get(n, "requests_per_minute", l.requests_per_minute, where);
  get(n, "tokens_per_minute", l.tokens_per_minute, where);
  if (l.requests_per_minute < 0 || l.tokens_per_minute < 0) bad(where, "limits must be >= 0");
  return l;
}

}  // namespace

const alias_config* routing_config::find_alias(std::string_view model) const noexcept {
  for (const auto& a : aliases)
    if (a.name == model) return &a;
  return nullptr;
}

const model_group* routing_config::find_model(std::string_view model) const noexcept {
  for (const auto& m : models)
    if (m.name == model) return &m;
  return nullptr;
}

routing_config parse_routing_config(const YAML::Node& n) {
  routing_config c;
  if (!n || n.IsNull()) return c;
  if (!n.IsMap()) bad("routing", "must be a map");
  get(n, "route_header", c.route_header, "routing");

  if (auto a = n["aliases"]) {
    if (!a.IsSequence()) bad("routing.aliases", "must be a list");
    for (size_t i = 0; i < a.size(); ++i) {
      std::string where = "routing.aliases[" + std::to_string(i) + "]";
      alias_config ac;
      get(a[i], "name", ac.name, where);
      if (ac.name.empty()) bad(where, "needs a name");
      auto t = a[i]["tiers"];
      if (!t || !t.IsSequence() || t.size() == 0) bad(where, "needs a non-empty tiers list");
      double prev = -1;
      for (size_t j = 0; j < t.size(); ++j) {
        std::string tw = where + ".tiers[" + std::to_string(j) + "]";
        tier tr;
        get(t[j], "name", tr.name, tw);
        get(t[j], "model", tr.model, tw);
        if (tr.model.empty()) bad(tw, "needs a model");
        if (t[j]["below"]) {
          get(t[j], "below", tr.upper, tw);
          tr.inclusive = false;
        } else if (t[j]["up_to"]) {
          get(t[j], "up_to", tr.upper, tw);
          tr.inclusive = true;
        } else if (j + 1 < t.size()) {
          bad(tw, "needs `below` or `up_to` (only the last tier may omit it)");
        } else {
          tr.upper = 1.0;
          tr.inclusive = true;
        }
        if (tr.upper < prev || tr.upper < 0 || tr.upper > 1) bad(tw, "bounds must rise within [0,1]");
        prev = tr.upper;
        if (tr.name.empty()) tr.name = tr.model;
        ac.tiers.tiers.push_back(std::move(tr));
      }
      c.aliases.push_back(std::move(ac));
    }
  }

  if (auto s = n["scorer"]) {
    get(s, "bias", c.scorer.bias, "routing.scorer");
    get(s, "proof_floor", c.scorer.proof_floor, "routing.scorer");
    if (auto w = s["weights"]) {
      if (!w.IsMap()) bad("routing.scorer.weights", "must be a map of feature: weight");
      for (auto it = w.begin(); it != w.end(); ++it) {
        auto name = it->first.as<std::string>();
        auto f = feature_from_name(name, "routing.scorer.weights");
        try {
          c.scorer.w[static_cast<size_t>(f)] = it->second.as<double>();
        } catch (const YAML::Exception&) {
          bad("routing.scorer.weights." + name, "must be a number");
        }
      }
    }
  }

  if (auto m = n["models"]) {
    if (!m.IsSequence()) bad("routing.models", "must be a list");
    for (size_t i = 0; i < m.size(); ++i) {
      std::string where = "routing.models[" + std::to_string(i) + "]";
      model_group g;
      get(m[i], "name", g.name, where);
      if (g.name.empty()) bad(where, "needs a name");
      std::string mode = "latency";
      get(m[i], "balance", mode, where);
      if (mode == "latency") g.mode = balance_mode::latency;
      else if (mode == "prefix_affinity") g.mode = balance_mode::prefix_affinity;
      else bad(where + ".balance", "latency or prefix_affinity");
      auto d = m[i]["deployments"];
      if (!d || !d.IsSequence() || d.size() == 0) bad(where, "needs a non-empty deployments list");
      for (size_t j = 0; j < d.size(); ++j) {
        std::string dw = where + ".deployments[" + std::to_string(j) + "]";
        deployment_ref r;
        if (d[j].IsScalar()) {
          r.name = d[j].as<std::string>();
        } else {
          get(d[j], "name", r.name, dw);
          get(d[j], "weight", r.weight, dw);
          get(d[j], "upstream_model", r.upstream_model, dw);
        }
        if (r.name.empty()) bad(dw, "needs a name");
        if (!(r.weight > 0)) bad(dw + ".weight", "must be > 0");
        g.deployments.push_back(std::move(r));
      }
      if (auto f = m[i]["fallbacks"]) {
        if (!f.IsSequence()) bad(where + ".fallbacks", "must be a list of model names");
        for (const auto& x : f) g.fallbacks.push_back(x.as<std::string>());
      }
      c.models.push_back(std::move(g));
    }
    for (const auto& g : c.models)
      for (const auto& f : g.fallbacks)
        if (!c.find_model(f)) bad("routing.models." + g.name + ".fallbacks", "unknown model '" + f + "'");
  }

  if (auto r = n["retries"]) {
    get(r, "max_attempts", c.retries.max_attempts, "routing.retries");
    get(r, "first_byte_timeout_ms", c.retries.first_byte_timeout_ms, "routing.retries");
    get(r, "max_retry_after_s", c.retries.max_retry_after_s, "routing.retries");
    c.retries.budget = parse_budget(r, c.retries.budget, "routing.retries");
    if (c.retries.max_attempts < 1) bad("routing.retries.max_attempts", "must be >= 1");
  }
  if (auto h = n["hedging"]) {
    get(h, "enabled", c.hedging.enabled, "routing.hedging");
    get(h, "delay_ms", c.hedging.delay_ms, "routing.hedging");
    get(h, "default_delay_ms", c.hedging.default_delay_ms, "routing.hedging");
    get(h, "min_delay_ms", c.hedging.min_delay_ms, "routing.hedging");
    c.hedging.budget = parse_budget(h, c.hedging.budget, "routing.hedging");
  }
  if (auto h = n["health"]) {
    get(h, "ewma_alpha", c.health.ewma_alpha, "routing.health");
    get(h, "prior_ttft_ms", c.health.prior_ttft_ms, "routing.health");
    get(h, "prior_per_token_ms", c.health.prior_per_token_ms, "routing.health");
    get(h, "stale_after_ms", c.health.stale_after_ms, "routing.health");
    if (!(c.health.ewma_alpha > 0 && c.health.ewma_alpha <= 1)) bad("routing.health.ewma_alpha", "in (0,1]");
    if (auto b = h["breaker"]) {
      auto& bc = c.health.breaker;
      std::string w = "routing.health.breaker";
      get(b, "consecutive_failures", bc.consecutive_failures, w);
      get(b, "failure_rate", bc.failure_rate, w);
      get(b, "window", bc.window, w);
      get(b, "min_requests", bc.min_requests, w);
      get(b, "open_ms", bc.open_ms, w);
      get(b, "max_open_ms", bc.max_open_ms, w);
      get(b, "half_open_probes", bc.half_open_probes, w);
      get(b, "probe_successes", bc.probe_successes, w);
      if (bc.consecutive_failures < 1 || bc.window < 1 || bc.window > 256 || bc.half_open_probes < 1 ||
          bc.probe_successes < 1 || bc.open_ms < 0)
        bad(w, "out of range (window 1..256, counts >= 1)");
    }
  }
  if (auto a = n["affinity"]) {
    get(a, "load_factor", c.affinity.load_factor, "routing.affinity");
    get(a, "prefix_bytes", c.affinity.prefix_bytes, "routing.affinity");
    get(a, "min_bytes", c.affinity.min_bytes, "routing.affinity");
    if (!(c.affinity.load_factor >= 1)) bad("routing.affinity.load_factor", "must be >= 1");
  }
  if (auto p = n["prompt_cache"]) {
    get(p, "anthropic_cache_control", c.prompt_cache.anthropic_cache_control, "routing.prompt_cache");
    get(p, "min_chars", c.prompt_cache.min_chars, "routing.prompt_cache");
  }
  if (auto r = n["rate_limits"]) {
    auto& rl = c.rate_limits;
    get(r, "backend", rl.backend, "routing.rate_limits");
    get(r, "redis_url", rl.redis_url, "routing.rate_limits");
    get(r, "default_output_tokens", rl.default_output_tokens, "routing.rate_limits");
    if (rl.backend != "local" && rl.backend != "redis") bad("routing.rate_limits.backend", "local or redis");
    if (rl.backend == "redis" && rl.redis_url.empty()) bad("routing.rate_limits.redis_url", "required for redis");
    if (auto d = r["default"]) rl.defaults = parse_limit(d, "routing.rate_limits.default");
    if (auto k = r["keys"]) {
      if (!k.IsSequence()) bad("routing.rate_limits.keys", "must be a list");
      for (size_t i = 0; i < k.size(); ++i) {
        std::string w = "routing.rate_limits.keys[" + std::to_string(i) + "]";
        std::string id, env;
        get(k[i], "key_id", id, w);
        get(k[i], "key_env", env, w);
        if (!env.empty()) {
          const char* v = std::getenv(env.c_str());
          if (!v || !*v) bad(w, "environment variable " + env + " is not set");
          id = key_id(v);
        }
        if (id.empty()) bad(w, "needs key_id or key_env");
        rl.keys.emplace_back(id, parse_limit(k[i], w));
      }
    }
  }
  return c;
}

routing_config load_routing_config_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("cannot read config " + path + ": " + e.what());
  }
  if (root["routing"]) return parse_routing_config(root["routing"]);
  return parse_routing_config(root);
}

}  // namespace fp::routing
