// Mock latency profiles, per-request overrides and the deterministic request plan.
#include <fmt/format.h>

#include <cmath>

#include "api/json_util.hpp"
#include "providers/mock.hpp"

namespace fp::providers {

namespace {

const mock_profile kProfiles[] = {
    // name, ttft p50, p95, tok/s p50, tok/s sigma, jitter, tail frac, tail mult, err, stall, stall ms, tokens
    {"gpt-4o", 600, 1500, 60, 0.25, 0.3, 0, 1, 0, 0, 0, 120},
    {"gpt-4o-mini", 350, 800, 110, 0.25, 0.3, 0, 1, 0, 0, 0, 80},
    {"claude-3-haiku", 300, 600, 150, 0.2, 0.3, 0, 1, 0, 0, 0, 60},
    {"local-7b", 60, 150, 100, 0.15, 0.2, 0, 1, 0, 0, 0, 20},
    {"zero", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 20},
    {"tail", 50, 80, 200, 0.1, 0.2, 0.05, 10, 0, 0, 0, 20},
};

constexpr std::string_view kWords[] = {
    "the", "quick", "model", "answers", "with", "a", "short", "and", "simple", "reply",
    "about", "fast", "streaming", "tokens", "that", "arrive", "in", "order", "from", "an",
    "upstream", "server", "while", "the", "gateway", "measures", "every", "gap", "between", "them",
    "so", "latency", "stays", "low", "under", "load", "cache", "hits", "are", "free",
    "routing", "picks", "cheap", "models", "for", "easy", "questions", "hedging", "cuts", "tails",
    "of", "slow", "requests", "because", "users", "wait", "for", "first", "words", "more",
    "than", "last", "ones", "."};

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct rng {
  uint64_t s;
  double uniform() { return static_cast<double>(splitmix(s) >> 11) * 0x1.0p-53; }  // [0,1)
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
};

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

int64_t ms_to_ns(double ms) { return ms <= 0 ? 0 : static_cast<int64_t>(ms * 1e6); }

void append_text(std::string& out, const boost::json::value* c) {
  if (!c) return;
  if (c->is_string()) {
    if (!out.empty()) out.push_back('\n');
    out += api::detail::sv(c->get_string());
  } else if (c->is_array()) {
    for (const auto& p : c->get_array()) {
      if (p.is_object()) {
        auto t = api::detail::member_string(p.get_object(), "text");
        if (!t.empty()) {
          if (!out.empty()) out.push_back('\n');
          out += t;
        }
      }
    }
  }
}

}  // namespace

std::vector<std::string> mock_profile_names() {
  std::vector<std::string> v;
  for (const auto& p : kProfiles) v.push_back(p.name);
  return v;
}

result<mock_profile> find_mock_profile(std::string_view name) {
  for (const auto& p : kProfiles) {
    if (p.name == name) return p;
  }
  std::string names;
  for (const auto& p : kProfiles) names += (names.empty() ? "" : ", ") + p.name;
  return make_error(errc::invalid_request, fmt::format("unknown mock profile '{}' (known: {})", name, names));
}

int64_t mock_plan::total_ns() const noexcept {
  int64_t t = ttft_ns + stall_ns;
  for (auto g : gaps_ns) t += g;
  return t;
}

result<mock_overrides> mock_overrides_from_body(const boost::json::object& body) {
  mock_overrides o;
  const auto* mv = body.if_contains("mock");
  if (!mv || mv->is_null()) return o;
  if (!mv->is_object()) return make_error(errc::invalid_request, "Invalid type for 'mock': expected an object.");
  const auto& m = mv->get_object();
  auto num = [&](std::string_view k) -> result<std::optional<double>> {
    auto* v = m.if_contains(k);
    if (!v || v->is_null()) return std::optional<double>{};
    auto d = api::detail::as_number(*v);
    if (!d || *d < 0) return make_error(errc::invalid_request, fmt::format("Invalid value for 'mock.{}': expected a non-negative number.", k));
    return std::optional<double>(*d);
  };
  auto integer = [&](std::string_view k, int64_t& out) -> result<void> {
    auto* v = m.if_contains(k);
    if (!v || v->is_null()) return {};
    auto i = api::detail::as_integer(*v);
    if (!i) return make_error(errc::invalid_request, fmt::format("Invalid value for 'mock.{}': expected an integer.", k));
    out = *i;
    return {};
  };
  auto t = num("ttft_ms");
  if (!t) return t.error();
  o.ttft_ms = *t;
  auto g = num("itl_ms");
  if (!g) return g.error();
  o.itl_ms = *g;
  auto s = num("stall_ms");
  if (!s) return s.error();
  o.stall_ms = s->value_or(0);
  int64_t ot = -1, es = 0;
  if (auto r = integer("output_tokens", ot); !r) return r.error();
  if (ot >= 0) o.output_tokens = ot;
  if (auto r = integer("error_status", es); !r) return r.error();
  o.error_status = static_cast<int>(es);
  if (auto r = integer("error_after", o.error_after); !r) return r.error();
  if (auto r = integer("stall_after", o.stall_after); !r) return r.error();
  if (auto r = integer("disconnect_after", o.disconnect_after); !r) return r.error();
  if (auto* v = m.if_contains("tool_call"); v && v->is_bool()) o.tool_call = v->get_bool();
  if (auto* v = m.if_contains("echo"); v && v->is_bool()) o.echo = v->get_bool();
  return o;
}

mock_request_view mock_view_of_openai(const api::request& req, std::string& prompt, std::string& last_user) {
  mock_request_view v;
  v.max_tokens = req.max_tokens;
  const auto& b = req.body();
  if (auto* msgs = b.if_contains("messages"); msgs && msgs->is_array()) {
    for (const auto& mv : msgs->get_array()) {
      if (!mv.is_object()) continue;
      const auto& m = mv.get_object();
      append_text(prompt, m.if_contains("content"));
      if (api::detail::member_string(m, "role") == "user") {
        last_user.clear();
        append_text(last_user, m.if_contains("content"));
      }
    }
  } else if (auto* p = b.if_contains("prompt")) {
    append_text(prompt, p);
    last_user = prompt;
  }
  if (auto* tools = b.if_contains("tools"); tools && tools->is_array() && !tools->get_array().empty()) {
    v.has_tools = true;
    const auto& t0 = tools->get_array()[0];
    if (t0.is_object()) {
      if (auto* f = t0.get_object().if_contains("function"); f && f->is_object()) {
        v.first_tool_name = api::detail::member_string(f->get_object(), "name");
      }
    }
  }
  if (auto* tc = b.if_contains("tool_choice")) {
    if (tc->is_string()) {
      v.tool_choice_forces = tc->get_string() == "required";
      v.tool_choice_none = tc->get_string() == "none";
    } else if (tc->is_object()) {
      v.tool_choice_forces = true;
      if (auto* f = tc->get_object().if_contains("function"); f && f->is_object()) {
        auto n = api::detail::member_string(f->get_object(), "name");
        if (!n.empty()) v.first_tool_name = n;
      }
    }
  }
  v.prompt_text = prompt;
  v.last_user_text = last_user;
  return v;
}

mock_plan make_mock_plan(const mock_profile& p, uint64_t seed, uint64_t seq, const mock_request_view& v,
                         const mock_overrides& o) {
  mock_plan plan;
  uint64_t state = seed * 0x9E3779B97F4A7C15ull ^ (seq + 1) * 0xD1B54A32D192ED03ull;
  rng r{state};
  bool tail = p.tail_fraction > 0 && r.uniform() < p.tail_fraction;
  double mult = tail ? p.tail_multiplier : 1.0;

  double ttft_ms = 0;
  if (p.ttft_p50_ms > 0) {
    double sigma = p.ttft_p95_ms > p.ttft_p50_ms ? std::log(p.ttft_p95_ms / p.ttft_p50_ms) / 1.6449 : 0;
    ttft_ms = p.ttft_p50_ms * std::exp(sigma * r.normal());
  }
  double rate = p.tokens_per_s_p50 > 0 ? p.tokens_per_s_p50 * std::exp(p.tokens_per_s_sigma * r.normal()) : 0;
  double gap_ms = rate > 0 ? 1000.0 / rate : 0;
  bool error = p.error_rate > 0 && r.uniform() < p.error_rate;
  bool stall = p.stall_rate > 0 && r.uniform() < p.stall_rate;
  double stall_pos = r.uniform();
  plan.ttft_ns = ms_to_ns((o.ttft_ms ? *o.ttft_ms : ttft_ms) * (o.ttft_ms ? 1.0 : mult));

  plan.prompt_tokens = std::max<int64_t>(1, static_cast<int64_t>((v.prompt_text.size() + 3) / 4));
  bool want_tool = v.has_tools && !v.tool_choice_none;
  if (want_tool) {
    bool trigger = v.tool_choice_forces || v.last_user_text.find("use a tool") != std::string_view::npos ||
                   v.last_user_text.find("call a tool") != std::string_view::npos ||
                   v.last_user_text.find("[tool]") != std::string_view::npos;
    want_tool = o.tool_call.value_or(trigger);
  }
  // Generate the pieces.
  if (want_tool) {
    plan.tool_call = true;
    plan.tool_name = v.first_tool_name.empty() ? "tool" : v.first_tool_name;
    uint64_t h = fnv1a(v.prompt_text, seed);
    plan.tool_id = fmt::format("call_{:016x}", h);
    std::string q;
    std::string_view lu = v.last_user_text.substr(0, 40);
    for (char c : lu) {
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) continue;
      q.push_back(c);
    }
    plan.tool_arguments = fmt::format("{{\"query\": \"{}\"}}", q);
    // Stream the arguments in pieces of ~8 bytes (ASCII only after the filter above? keep UTF-8 whole).
    std::string_view a = plan.tool_arguments;
    while (!a.empty()) {
      size_t n = std::min<size_t>(8, a.size());
      while (n < a.size() && (static_cast<unsigned char>(a[n]) & 0xC0) == 0x80) ++n;
      plan.tokens.emplace_back(a.substr(0, n));
      a.remove_prefix(n);
    }
    plan.finish = api::finish_reason::tool_calls;
  } else if (o.echo) {
    std::string_view t = v.last_user_text;
    while (!t.empty()) {
      size_t sp = t.find(' ', 1);
      size_t n = sp == std::string_view::npos ? t.size() : sp;
      plan.tokens.emplace_back(t.substr(0, n));
      t.remove_prefix(n);
    }
    plan.finish = api::finish_reason::stop;
  } else {
    int64_t n = o.output_tokens ? *o.output_tokens : p.output_tokens;
    uint64_t h = fnv1a(v.prompt_text, seed ^ 0x5bd1e995);
    for (int64_t i = 0; i < n; ++i) {
      std::string_view w = kWords[splitmix(h) % std::size(kWords)];
      plan.tokens.push_back(i == 0 ? std::string(w) : " " + std::string(w));
    }
    plan.finish = api::finish_reason::stop;
  }
  if (v.max_tokens && static_cast<int64_t>(plan.tokens.size()) > *v.max_tokens && !plan.tool_call) {
    plan.tokens.resize(static_cast<size_t>(*v.max_tokens));
    plan.finish = api::finish_reason::length;
  }
  size_t n = plan.tokens.size();
  plan.gaps_ns.resize(n > 0 ? n - 1 : 0);
  for (auto& g : plan.gaps_ns) {
    double gm = o.itl_ms ? *o.itl_ms : gap_ms * mult * (1.0 + p.jitter * (2.0 * r.uniform() - 1.0));
    g = ms_to_ns(gm);
  }
  plan.error_status = o.error_status ? o.error_status : (error ? 500 : 0);
  plan.error_after = o.error_after;
  plan.disconnect_after = o.disconnect_after;
  if (o.stall_after >= 0) {
    plan.stall_after = o.stall_after;
    plan.stall_ns = ms_to_ns(o.stall_ms);
  } else if (stall && n > 1) {
    plan.stall_after = 1 + static_cast<int64_t>(stall_pos * static_cast<double>(n - 1));
    plan.stall_ns = ms_to_ns(p.stall_ms);
  }
  return plan;
}

}  // namespace fp::providers
