// The gateway config: YAML -> config, validated at start-up with errors that name the field.
#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gateway/gateway.hpp"

namespace fp::gateway {

namespace {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw config_error(fmt::format("{}: {}", field, what));
}

void check_keys(const YAML::Node& n, const std::string& field, std::initializer_list<std::string_view> allowed) {
  if (!n.IsMap()) fail(field, "must be a mapping");
  for (const auto& kv : n) {
    auto k = kv.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || a == k;
    if (!ok) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(field.empty() ? k : field + "." + k, fmt::format("unknown field (known: {})", list));
    }
  }
}

template <class T>
T get(const YAML::Node& n, const std::string& field, T dflt) {
  if (!n || n.IsNull()) return dflt;
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    fail(field, "has the wrong type");
  }
}

int64_t get_int(const YAML::Node& n, const std::string& field, int64_t dflt, int64_t lo, int64_t hi) {
  auto v = get<int64_t>(n, field, dflt);
  if (v < lo || v > hi) fail(field, fmt::format("must be between {} and {}", lo, hi));
  return v;
}

std::chrono::milliseconds get_ms(const YAML::Node& n, const std::string& field, std::chrono::milliseconds dflt) {
  return std::chrono::milliseconds(get_int(n, field, dflt.count(), 1, 24LL * 3600 * 1000));
}

timeouts parse_timeouts(const YAML::Node& n, const std::string& field, timeouts t) {
  if (!n) return t;
  check_keys(n, field, {"connect_ms", "first_byte_ms", "chunk_gap_ms", "total_ms"});
  t.connect = get_ms(n["connect_ms"], field + ".connect_ms", t.connect);
  t.first_byte = get_ms(n["first_byte_ms"], field + ".first_byte_ms", t.first_byte);
  t.chunk_gap = get_ms(n["chunk_gap_ms"], field + ".chunk_gap_ms", t.chunk_gap);
  t.total = get_ms(n["total_ms"], field + ".total_ms", t.total);
  return t;
}

std::vector<std::string> split_keys(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string_view::npos) j = s.size();
    auto k = s.substr(i, j - i);
    while (!k.empty() && (k.front() == ' ' || k.front() == '\t')) k.remove_prefix(1);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t' || k.back() == '\n')) k.remove_suffix(1);
    if (!k.empty()) out.emplace_back(k);
    i = j + 1;
  }
  return out;
}

void validate(config& c) {
  std::set<std::string> names;
  for (size_t i = 0; i < c.providers.size(); ++i) {
    auto& p = c.providers[i].spec;
    auto f = fmt::format("providers[{}]", i);
    if (p.name.empty()) fail(f + ".name", "is required");
    if (!names.insert(p.name).second) fail(f + ".name", fmt::format("duplicate provider name '{}'", p.name));
    if (p.kind != "openai" && p.kind != "anthropic" && p.kind != "mock" && p.kind != "local")
      fail(f + ".kind", fmt::format("'{}' is not one of openai, anthropic, mock, local", p.kind));
    if (!p.api_key_env.empty()) {
      const char* v = std::getenv(p.api_key_env.c_str());
      if (!v || !*v) {
        log(log_level::warn, "config",
            fmt::format("{}.api_key_env: environment variable {} is not set; calling without a key", f, p.api_key_env));
      } else {
        p.api_key = v;
      }
    }
  }
  std::set<std::string> models;
  for (size_t i = 0; i < c.models.size(); ++i) {
    auto& m = c.models[i];
    auto f = fmt::format("models[{}]", i);
    if (m.name.empty()) fail(f + ".name", "is required");
    if (!models.insert(m.name).second) fail(f + ".name", fmt::format("duplicate model name '{}'", m.name));
    if (m.deployments.empty()) fail(f, "needs `provider` or `deployments`");
    for (size_t j = 0; j < m.deployments.size(); ++j)
      if (!names.count(m.deployments[j].provider))
        fail(fmt::format("{}.deployments[{}].provider", f, j),
             fmt::format("no provider named '{}'", m.deployments[j].provider));
  }
  if (!c.api_keys_env.empty()) {
    const char* v = std::getenv(c.api_keys_env.c_str());
    if (!v || !*v) fail("auth.api_keys_env", fmt::format("environment variable {} is not set", c.api_keys_env));
    for (auto& k : split_keys(v)) c.api_keys.push_back(std::move(k));
  }
  log_level lv;
  if (!parse_log_level(c.log_level, lv)) fail("log.level", "must be one of debug, info, warn, error, off");
}

config parse(const YAML::Node& root) {
  config c;
  if (!root || root.IsNull()) {
    validate(c);
    return c;
  }
  if (!root.IsMap()) fail("(root)", "the config must be a mapping");
  // Top-level sections owned by other components are read by them from config::yaml.
  static const std::set<std::string> mine = {"server", "auth", "log", "timeouts", "providers", "models"};
  static const std::set<std::string> others = {"cache", "routing", "compress", "rate_limits", "engine", "semantic"};
  for (const auto& kv : root) {
    auto k = kv.first.as<std::string>();
    if (!mine.count(k) && !others.count(k))
      fail(k, "unknown top-level section (known: server, auth, log, timeouts, providers, models, cache, routing, "
              "compress, rate_limits, engine)");
  }
  if (auto s = root["server"]) {
    check_keys(s, "server", {"host", "port", "threads", "max_header_bytes", "max_body_bytes", "read_timeout_ms",
                             "idle_timeout_ms", "write_timeout_ms", "shutdown_grace_ms"});
    auto& o = c.server;
    o.host = get<std::string>(s["host"], "server.host", o.host);
    o.port = static_cast<uint16_t>(get_int(s["port"], "server.port", o.port, 0, 65535));
    o.threads = static_cast<int>(get_int(s["threads"], "server.threads", 0, 0, 1024));
    o.max_header_bytes = static_cast<size_t>(get_int(s["max_header_bytes"], "server.max_header_bytes",
                                                     static_cast<int64_t>(o.max_header_bytes), 1024, 1 << 20));
    o.max_body_bytes = static_cast<size_t>(get_int(s["max_body_bytes"], "server.max_body_bytes",
                                                   static_cast<int64_t>(o.max_body_bytes), 1024, 1LL << 30));
    o.read_timeout = get_ms(s["read_timeout_ms"], "server.read_timeout_ms", o.read_timeout);
    o.idle_timeout = get_ms(s["idle_timeout_ms"], "server.idle_timeout_ms", o.idle_timeout);
    o.write_timeout = get_ms(s["write_timeout_ms"], "server.write_timeout_ms", o.write_timeout);
    o.shutdown_grace = get_ms(s["shutdown_grace_ms"], "server.shutdown_grace_ms", o.shutdown_grace);
  }
  if (auto a = root["auth"]) {
    check_keys(a, "auth", {"api_keys", "api_keys_env"});
    c.api_keys_env = get<std::string>(a["api_keys_env"], "auth.api_keys_env", "");
    if (auto ks = a["api_keys"]) {
      if (!ks.IsSequence()) fail("auth.api_keys", "must be a list of strings");
      for (size_t i = 0; i < ks.size(); ++i) c.api_keys.push_back(get<std::string>(ks[i], fmt::format("auth.api_keys[{}]", i), ""));
    }
  }
  if (auto l = root["log"]) {
    check_keys(l, "log", {"level", "access_log"});
    c.log_level = get<std::string>(l["level"], "log.level", c.log_level);
    c.access_log = get<bool>(l["access_log"], "log.access_log", c.access_log);
  }
  c.default_timeouts = parse_timeouts(root["timeouts"], "timeouts", c.default_timeouts);
  if (auto ps = root["providers"]) {
    if (!ps.IsSequence()) fail("providers", "must be a list");
    for (size_t i = 0; i < ps.size(); ++i) {
      auto f = fmt::format("providers[{}]", i);
      const auto& n = ps[i];
      check_keys(n, f, {"name", "kind", "base_url", "api_key_env", "headers", "max_connections", "verify_tls",
                        "request_usage", "anthropic_version", "profile", "seed", "model_path", "threads", "timeouts"});
      provider_config pc;
      auto& s = pc.spec;
      s.name = get<std::string>(n["name"], f + ".name", "");
      s.kind = get<std::string>(n["kind"], f + ".kind", "");
      s.base_url = get<std::string>(n["base_url"], f + ".base_url", "");
      s.api_key_env = get<std::string>(n["api_key_env"], f + ".api_key_env", "");
      if (auto h = n["headers"]) {
        if (!h.IsMap()) fail(f + ".headers", "must be a mapping of header name to value");
        for (const auto& kv : h)
          s.headers.emplace_back(kv.first.as<std::string>(),
                                 get<std::string>(kv.second, f + ".headers." + kv.first.as<std::string>(), ""));
      }
      s.max_connections = static_cast<size_t>(get_int(n["max_connections"], f + ".max_connections", 64, 1, 100000));
      s.verify_tls = get<bool>(n["verify_tls"], f + ".verify_tls", true);
      s.request_usage = get<bool>(n["request_usage"], f + ".request_usage", true);
      s.anthropic_version = get<std::string>(n["anthropic_version"], f + ".anthropic_version", s.anthropic_version);
      s.profile = get<std::string>(n["profile"], f + ".profile", "");
      s.seed = get<uint64_t>(n["seed"], f + ".seed", 0);
      s.model_path = get<std::string>(n["model_path"], f + ".model_path", "");
      s.threads = static_cast<int>(get_int(n["threads"], f + ".threads", 0, 0, 1024));
      pc.t = parse_timeouts(n["timeouts"], f + ".timeouts", c.default_timeouts);
      if ((s.kind == "openai" || s.kind == "anthropic") && !s.base_url.empty()) {
        auto u = http::parse_base_url(s.base_url);
        if (!u) fail(f + ".base_url", u.error().message);
      }
      if (s.kind == "local" && s.model_path.empty()) fail(f + ".model_path", "is required for kind local");
      c.providers.push_back(std::move(pc));
    }
  }
  if (auto ms = root["models"]) {
    if (!ms.IsSequence()) fail("models", "must be a list");
    for (size_t i = 0; i < ms.size(); ++i) {
      auto f = fmt::format("models[{}]", i);
      const auto& n = ms[i];
      check_keys(n, f, {"name", "provider", "upstream_model", "deployments"});
      model_config m;
      m.name = get<std::string>(n["name"], f + ".name", "");
      if (n["provider"]) {
        if (n["deployments"]) fail(f, "give either `provider` or `deployments`, not both");
        m.deployments.push_back({get<std::string>(n["provider"], f + ".provider", ""),
                                 get<std::string>(n["upstream_model"], f + ".upstream_model", "")});
      } else if (auto ds = n["deployments"]) {
        if (!ds.IsSequence()) fail(f + ".deployments", "must be a list");
        for (size_t j = 0; j < ds.size(); ++j) {
          auto fj = fmt::format("{}.deployments[{}]", f, j);
          check_keys(ds[j], fj, {"provider", "upstream_model"});
          m.deployments.push_back({get<std::string>(ds[j]["provider"], fj + ".provider", ""),
                                   get<std::string>(ds[j]["upstream_model"], fj + ".upstream_model", "")});
        }
      }
      c.models.push_back(std::move(m));
    }
  }
  validate(c);
  return c;
}

}  // namespace

result<config> config_from_yaml(std::string_view yaml_text) {
  try {
    auto root = YAML::Load(std::string(yaml_text));
    auto c = parse(root);
    c.yaml = std::make_shared<const YAML::Node>(root);
    return c;
  } catch (const YAML::ParserException& e) {
    return make_error(errc::invalid_request, fmt::format("YAML syntax error at line {}, column {}: {}", e.mark.line + 1,
                                                         e.mark.column + 1, e.msg));
  } catch (const config_error& e) {
    return make_error(errc::invalid_request, e.what());
  } catch (const YAML::Exception& e) {
    return make_error(errc::invalid_request, e.what());
  }
}

result<config> load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error(errc::io_error, fmt::format("cannot read config file {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = config_from_yaml(ss.str());
  if (!c) return make_error(c.error().code, fmt::format("{}: {}", path, c.error().message));
  return c;
}

config default_config(const std::string& model_path) {
  config c;
  struct m {
    const char* model;
    const char* profile;
  };
  if (providers::provider_kind_available("mock"))
  for (auto [model, profile] : {m{"gpt-4o", "gpt-4o"}, m{"gpt-4o-mini", "gpt-4o-mini"},
                                m{"claude-3-haiku", "claude-3-haiku"}, m{"local-7b", "local-7b"},
                                m{"mock-zero", "zero"}}) {
    provider_config pc;
    pc.spec.name = std::string("mock-") + model;
    if (std::string_view(model) == "mock-zero") pc.spec.name = "mock-zero";
    pc.spec.kind = "mock";
    pc.spec.profile = profile;
    c.providers.push_back(pc);
    c.models.push_back({model, {{pc.spec.name, ""}}});
  }
  std::error_code ec;
  if (providers::provider_kind_available("local") && !model_path.empty() &&
      std::filesystem::exists(model_path, ec)) {
    provider_config pc;
    pc.spec.name = "local";
    pc.spec.kind = "local";
    pc.spec.model_path = model_path;
    c.providers.push_back(pc);
    c.models.push_back({"stories260K", {{"local", ""}}});
  }
  return c;
}

}  // namespace fp::gateway
