// What may be cached: repeatable requests, Cache-Control, TTL overrides; config from YAML.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "cache/cache.hpp"

namespace fp::cache {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> parse_seconds(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

bool listed(const std::vector<std::string>& v, std::string_view a, std::string_view b) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& m) { return m == a || m == b || m == "*"; });
}

}  // namespace

cache_control parse_cache_control(std::string_view header) {
  cache_control cc;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view d = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    size_t eq = d.find('=');
    std::string_view name = trim(d.substr(0, eq));
    if (iequals(name, "no-cache")) cc.no_cache = true;
    else if (iequals(name, "no-store")) cc.no_store = true;
    else if (iequals(name, "max-age") && eq != std::string_view::npos) {
      if (auto v = parse_seconds(d.substr(eq + 1))) cc.max_age_s = *v;
    }
  }
  return cc;
}

std::string_view status_name(status s) noexcept {
  switch (s) {
    case status::bypass: return "bypass";
    case status::miss: return "miss";
    case status::hit: return "hit";
    case status::coalesced: return "coalesced";
  }
  return "bypass";
}

decision decide(const config& cfg, const api::request& req, std::string_view upstream_model,
                const request_headers& h) {
  decision d;
  if (!cfg.enabled) {
    d.reason = "disabled";
    return d;
  }
  cache_control cc = parse_cache_control(h.cache_control);
  bool repeatable = (req.temperature && *req.temperature == 0.0) || req.seed.has_value() ||
                    listed(cfg.cache_any_temperature_models, req.model, upstream_model);
  if (!repeatable) {
    d.reason = "not repeatable (temperature not 0 and no seed)";
    return d;
  }
  d.ttl_s = cfg.default_ttl_s;
  if (!h.ttl.empty()) {
    if (auto v = parse_seconds(h.ttl)) d.ttl_s = *v;
  }
  d.ttl_s = std::min(d.ttl_s, cfg.max_ttl_s);
  d.lookup = !cc.no_cache;
  d.store = !cc.no_store && d.ttl_s > 0;
  d.max_age_s = cc.max_age_s;
  if (!d.lookup && !d.store) {
    d.reason = "cache-control";
    return d;
  }
  bool sem = cfg.semantic_enabled || listed(cfg.semantic_models, req.model, upstream_model);
  if (iequals(trim(h.semantic), "on")) sem = true;
  if (iequals(trim(h.semantic), "off")) sem = false;
  d.semantic = sem;
  return d;
}

config config_from_yaml(const YAML::Node& n) {
  config c;
  if (!n || n.IsNull()) return c;
  if (!n.IsMap()) throw std::runtime_error("cache: expected a mapping");
  auto get = [&](const char* name, auto& field) {
    const YAML::Node v = n[name];
    if (!v) return;
    try {
      field = v.as<std::decay_t<decltype(field)>>();
    } catch (const YAML::Exception& e) {
      throw std::runtime_error(std::string("cache.") + name + ": invalid value");
    }
  };
  for (const auto& kv : n) {
    static const char* known[] = {"enabled", "default_ttl_s", "max_ttl_s", "cache_any_temperature_models",
                                  "tenant_header", "max_entry_bytes", "memory_bytes", "memory_shards",
                                  "disk_path", "disk_max_bytes", "disk_sync", "redis_url", "redis_prefix",
                                  "redis_timeout_ms", "redis_pool", "redis_backoff_ms", "coalesce", "replay_paced", "replay_speed",
                                  "semantic_enabled", "semantic_models", "semantic_embedder",
                                  "semantic_threshold", "semantic_max_entries", "semantic_local_model",
                                  "semantic_local_max_tokens", "semantic_embeddings_url",
                                  "semantic_embeddings_model", "semantic_embeddings_api_key_env",
                                  "semantic_embeddings_dim", "semantic_embeddings_timeout_ms"};
    std::string k = kv.first.as<std::string>();
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      throw std::runtime_error("cache." + k + ": unknown field");
  }
  get("enabled", c.enabled);
  get("default_ttl_s", c.default_ttl_s);
  get("max_ttl_s", c.max_ttl_s);
  get("cache_any_temperature_models", c.cache_any_temperature_models);
  get("tenant_header", c.tenant_header);
  get("max_entry_bytes", c.max_entry_bytes);
  get("memory_bytes", c.memory_bytes);
  get("memory_shards", c.memory_shards);
  get("disk_path", c.disk_path);
  get("disk_max_bytes", c.disk_max_bytes);
  get("disk_sync", c.disk_sync);
  get("redis_url", c.redis_url);
  get("redis_prefix", c.redis_prefix);
  get("redis_timeout_ms", c.redis_timeout_ms);
  get("redis_pool", c.redis_pool);
  get("redis_backoff_ms", c.redis_backoff_ms);
  get("coalesce", c.coalesce);
  get("replay_paced", c.replay_paced);
  get("replay_speed", c.replay_speed);
  get("semantic_enabled", c.semantic_enabled);
  get("semantic_models", c.semantic_models);
  get("semantic_embedder", c.semantic_embedder);
  get("semantic_threshold", c.semantic_threshold);
  get("semantic_max_entries", c.semantic_max_entries);
  get("semantic_local_model", c.semantic_local_model);
  get("semantic_local_max_tokens", c.semantic_local_max_tokens);
  get("semantic_embeddings_url", c.semantic_embeddings_url);
  get("semantic_embeddings_model", c.semantic_embeddings_model);
  get("semantic_embeddings_api_key_env", c.semantic_embeddings_api_key_env);
  get("semantic_embeddings_dim", c.semantic_embeddings_dim);
  get("semantic_embeddings_timeout_ms", c.semantic_embeddings_timeout_ms);
  if (c.semantic_local_max_tokens < 2 || c.semantic_local_max_tokens > 8192)
    throw std::runtime_error("cache.semantic_local_max_tokens: must be in [2, 8192]");
  if (c.semantic_embeddings_dim == 0 || c.semantic_embeddings_dim > 65536)
    throw std::runtime_error("cache.semantic_embeddings_dim: must be in [1, 65536]");
  if (c.semantic_embeddings_timeout_ms <= 0)
    throw std::runtime_error("cache.semantic_embeddings_timeout_ms: must be > 0");
  if (c.default_ttl_s < 0) throw std::runtime_error("cache.default_ttl_s: must be >= 0");
  if (c.max_ttl_s < 0) throw std::runtime_error("cache.max_ttl_s: must be >= 0");
  if (c.memory_shards == 0) throw std::runtime_error("cache.memory_shards: must be > 0");
  if (c.replay_speed <= 0) throw std::runtime_error("cache.replay_speed: must be > 0");
  if (c.semantic_threshold < 0 || c.semantic_threshold > 1)
    throw std::runtime_error("cache.semantic_threshold: must be in (0, 1] (0: the embedder's default)");
  if (c.semantic_embedder != "lexical" && c.semantic_embedder != "local" && c.semantic_embedder != "upstream")
    throw std::runtime_error("cache.semantic_embedder: must be lexical, local or upstream");
  return c;
}

}  // namespace fp::cache
