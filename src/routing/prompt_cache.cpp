#include <boost/json.hpp>

#include "routing/routing.hpp"

namespace fp::routing {
namespace {

namespace json = boost::json;

int64_t text_chars(const json::value& v) {
  if (v.is_string()) return static_cast<int64_t>(v.as_string().size());
  if (v.is_array()) {
    int64_t n = 0;
    for (const auto& b : v.as_array())
      if (b.is_object())
        if (auto t = b.as_object().if_contains("text"); t && t->is_string())
          n += static_cast<int64_t>(t->as_string().size());
    return n;
  }
  return 0;
}

int count_breakpoints(const json::object& body) {
  int n = 0;
  auto scan_blocks = [&](const json::value& v) {
    if (!v.is_array()) return;
    for (const auto& b : v.as_array())
      if (b.is_object() && b.as_object().contains("cache_control")) ++n;
  };
  if (auto s = body.if_contains("system")) scan_blocks(*s);
  if (auto t = body.if_contains("tools")) scan_blocks(*t);
  if (auto m = body.if_contains("messages"); m && m->is_array())
    for (const auto& msg : m->as_array())
      if (msg.is_object())
        if (auto c = msg.as_object().if_contains("content")) scan_blocks(*c);
  return n;
}

json::object ephemeral() { return json::object{{"type", "ephemeral"}}; }

}  // namespace

int add_anthropic_cache_control(json::object& body, const prompt_cache_config& c) {
  if (!c.anthropic_cache_control) return 0;
  int used = count_breakpoints(body);
  int added = 0;
  // Tools come first in Anthropic's cache prefix order (tools, system, messages): one breakpoint on
  // the last tool caches all of them.
  if (auto t = body.if_contains("tools"); t && t->is_array() && !t->as_array().empty() && used < 4) {
    auto& tools = t->as_array();
    int64_t chars = static_cast<int64_t>(json::serialize(tools).size());
    auto& last = tools.back();
    if (chars >= c.min_chars && last.is_object() && !last.as_object().contains("cache_control")) {
      last.as_object()["cache_control"] = ephemeral();
      ++added;
      ++used;
    }
  }
  if (auto s = body.if_contains("system"); s && used < 4 && text_chars(*s) >= c.min_chars) {
    if (s->is_string()) {
      json::object block{{"type", "text"}, {"text", s->as_string()}, {"cache_control", ephemeral()}};
      *s = json::array{std::move(block)};
      ++added;
    } else if (s->is_array() && !s->as_array().empty()) {
      auto& last = s->as_array().back();
      if (last.is_object() && !last.as_object().contains("cache_control")) {
        last.as_object()["cache_control"] = ephemeral();
        ++added;
      }
    }
  }
  return added;
}

std::string add_anthropic_cache_control(std::string_view body_json, const prompt_cache_config& c,
                                        int* added) {
  if (added) *added = 0;
  if (!c.anthropic_cache_control) return std::string(body_json);
  boost::system::error_code ec;
  auto v = json::parse(body_json, ec);
  if (ec || !v.is_object()) return std::string(body_json);
  int n = add_anthropic_cache_control(v.as_object(), c);
  if (added) *added = n;
  if (n == 0) return std::string(body_json);
  return json::serialize(v);
}

uint64_t prefix_key(const json::object& body, size_t prefix_bytes, size_t min_bytes) {
  // Feed tools, then each message's role and text content, into the hash until prefix_bytes.
  uint64_t h = 1469598103934665603ull;
  size_t fed = 0;
  auto feed = [&](std::string_view s) {
    for (char ch : s) {
      if (fed >= prefix_bytes) return;
      h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ull;
      ++fed;
    }
  };
  if (auto t = body.if_contains("tools"); t && t->is_array() && !t->as_array().empty())
    feed(json::serialize(*t));
  if (auto m = body.if_contains("messages"); m && m->is_array()) {
    for (const auto& msg : m->as_array()) {
      if (fed >= prefix_bytes || !msg.is_object()) break;
      const auto& o = msg.as_object();
      if (auto r = o.if_contains("role"); r && r->is_string()) feed(r->as_string());
      feed("\x1f");
      if (auto c = o.if_contains("content")) {
        if (c->is_string()) {
          feed(c->as_string());
        } else if (c->is_array()) {
          for (const auto& b : c->as_array())
            if (b.is_object())
              if (auto tx = b.as_object().if_contains("text"); tx && tx->is_string()) feed(tx->as_string());
        }
      }
      feed("\x1e");
    }
  } else if (auto p = body.if_contains("prompt"); p && p->is_string()) {
    feed(p->as_string());
  }
  if (fed < min_bytes) return 0;
  return hash64(std::string_view(reinterpret_cast<const char*>(&h), sizeof h), 7) | 1;
}

}  // namespace fp::routing
