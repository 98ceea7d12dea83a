// Client request parsing and validation (OpenAI chat/completions and legacy completions).
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <memory>
#include <mutex>

#include "api/api.hpp"
#include "api/json_scan.hpp"
#include "api/json_util.hpp"

namespace fp::api {
namespace detail {

std::string_view json_kind_name(const boost::json::value& v) noexcept {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return "an integer";
    case boost::json::kind::double_: return "a decimal";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "a value";
}

std::optional<int64_t> as_integer(const boost::json::value& v) noexcept {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    auto u = v.get_uint64();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_double()) {
    double d = v.get_double();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e18) return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

std::optional<double> as_number(const boost::json::value& v) noexcept {
  if (v.is_int64()) return static_cast<double>(v.get_int64());
  if (v.is_uint64()) return static_cast<double>(v.get_uint64());
  if (v.is_double()) return v.get_double();
  return std::nullopt;
}

std::string describe_position(std::string_view text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return fmt::format("line {}, column {}", line, col);
}

result<boost::json::value> parse_json(std::string_view text, std::string_view what, boost::json::storage_ptr sp) {
  // One parser per thread, reset per call: its scratch storage is reused instead of allocated
  // and freed for every request (the parsed value is allocated from `sp` and owned by the caller).
  thread_local boost::json::stream_parser p({}, [] {
    boost::json::parse_options opt;
    opt.max_depth = 128;
    return opt;
  }());
  p.reset(std::move(sp));
  struct drop_on_error {  // a failed parse keeps neither a partial tree nor `sp` until the next call
    boost::json::stream_parser& p;
    bool armed = true;
    ~drop_on_error() {
      if (armed) p.reset();
    }
  } guard{p};
  boost::system::error_code ec;
  size_t n = p.write_some(text.data(), text.size(), ec);
  if (!ec && n < text.size()) {
    // Trailing bytes after a complete value: only whitespace is allowed.
    size_t i = n;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) ++i;
    if (i < text.size()) {
      return make_error(errc::invalid_request,
                        fmt::format("{} is not valid JSON: unexpected data after the value at byte {} ({})",
                                    what, i, describe_position(text, i)));
    }
  }
  if (!ec) p.finish(ec);
  if (ec) {
    size_t at = ec == boost::json::error::incomplete ? text.size() : n;
    if (text.empty()) {
      return make_error(errc::invalid_request, fmt::format("{} is empty; expected a JSON object", what));
    }
    return make_error(errc::invalid_request,
                      fmt::format("{} is not valid JSON: {} at byte {} ({})", what, ec.message(), at,
                                  describe_position(text, at)));
  }
  guard.armed = false;
  return p.release();
}

}  // namespace detail

namespace {

using detail::json_kind_name;

error type_error(std::string_view field, std::string_view expected, const boost::json::value& got) {
  return make_error(errc::invalid_request,
                    fmt::format("Invalid type for '{}': expected {}, but got {} instead.", field, expected,
                                json_kind_name(got)));
}

error value_error(std::string_view field, std::string_view msg) {
  return make_error(errc::invalid_request, fmt::format("Invalid value for '{}': {}", field, msg));
}

bool is_role(std::string_view r) {
  return r == "system" || r == "user" || r == "assistant" || r == "tool" || r == "developer" ||
         r == "function";
}

result<void> check_messages(const boost::json::value& v) {
  if (!v.is_array()) return type_error("messages", "an array", v);
  const auto& arr = v.get_array();
  if (arr.empty()) return value_error("messages", "must contain at least one message.");
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& m = arr[i];
    auto f = [i] { return fmt::format("messages[{}]", i); };  // only an error message needs it
    if (!m.is_object()) return type_error(f(), "an object", m);
    const auto& o = m.get_object();
    auto* role = o.if_contains("role");
    if (!role) return make_error(errc::invalid_request, fmt::format("Missing required parameter: '{}.role'.", f()));
    if (!role->is_string()) return type_error(f() + ".role", "a string", *role);
    if (!is_role(detail::sv(role->get_string()))) {
      return value_error(f() + ".role", fmt::format("'{}' is not one of 'system', 'developer', 'user', "
                                                    "'assistant', 'tool', 'function'.",
                                                    detail::sv(role->get_string())));
    }
    if (auto* c = o.if_contains("content"); c && !c->is_string() && !c->is_array() && !c->is_null()) {
      return type_error(f() + ".content", "a string or an array", *c);
    }
    if (auto* tc = o.if_contains("tool_calls"); tc && !tc->is_array() && !tc->is_null()) {
      return type_error(f() + ".tool_calls", "an array", *tc);
    }
  }
  return {};
}

result<void> check_prompt(const boost::json::value& v) {
  if (v.is_string()) return {};
  if (v.is_array()) {
    for (const auto& e : v.get_array()) {
      if (!e.is_string() && !e.is_int64() && !e.is_uint64() && !e.is_array()) {
        return type_error("prompt", "a string or an array of strings or tokens", e);
      }
    }
    return {};
  }
  return type_error("prompt", "a string or an array", v);
}

}  // namespace

finish_reason finish_reason_from_name(std::string_view s) noexcept {
  if (s == "stop") return finish_reason::stop;
  if (s == "length") return finish_reason::length;
  if (s == "tool_calls" || s == "function_call") return finish_reason::tool_calls;
  if (s == "content_filter") return finish_reason::content_filter;
  if (s == "error") return finish_reason::error;
  return finish_reason::none;
}

namespace {

// The memory of one request's JSON tree: a monotonic arena whose first block sits in the same
// allocation as the arena itself, so a typical body's tree costs one malloc and one free instead
// of one per string, array and object. Shared (reference-counted) by every copy of the body, which
// keeps its storage (Boost.JSON copies use the source's resource); freed with the last one.
// Copies may be made on several threads at once (a const request read by a cache flight's
// followers; json copies allocate from the source's arena), so allocation takes a lock: it is
// uncontended on the request's own thread, and only paths that build or copy the tree pay it.
class request_arena final : public boost::json::memory_resource {
 public:
  static constexpr size_t inline_bytes = 864;  // the whole arena stays a small (tcache) block

 private:
  void* do_allocate(size_t n, size_t align) override {
    std::lock_guard lk(mu_);
    return mono_.allocate(n, align);
  }
  void do_deallocate(void*, size_t, size_t) override {}  // all at once, with the arena
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  alignas(std::max_align_t) unsigned char first_[inline_bytes];
  boost::json::monotonic_resource mono_{first_, inline_bytes};
  std::mutex mu_;
};

// The body as a Boost.JSON tree in its own arena.
result<boost::json::value> parse_body_tree(std::string_view body) {
  return detail::parse_json(body, "The request body", boost::json::make_shared_resource<request_arena>());
}

// The top-level fields the parser reads, found in one pass over the body's members (instead of one
// lookup, a scan of every member, per field).
struct known_fields {
  const boost::json::value *model = nullptr, *messages = nullptr, *prompt = nullptr, *stream = nullptr,
                           *stream_options = nullptr, *max_tokens = nullptr, *max_completion_tokens = nullptr,
                           *temperature = nullptr, *top_p = nullptr, *seed = nullptr, *n = nullptr,
                           *stop = nullptr, *tools = nullptr, *tool_choice = nullptr,
                           *response_format = nullptr, *logprobs = nullptr;

  explicit known_fields(const boost::json::object& o) noexcept {
    for (const auto& kv : o) {
      std::string_view k = detail::sv_key(kv.key());
      const boost::json::value* v = &kv.value();
      auto is = [k](std::string_view name) { return k == name; };
      switch (k.size()) {
        case 1: if (is("n")) n = v; break;
        case 4: if (is("seed")) seed = v; else if (is("stop")) stop = v; break;
        case 5: if (is("model")) model = v; else if (is("top_p")) top_p = v; else if (is("tools")) tools = v; break;
        case 6: if (is("stream")) stream = v; else if (is("prompt")) prompt = v; break;
        case 8: if (is("messages")) messages = v; else if (is("logprobs")) logprobs = v; break;
        case 10: if (is("max_tokens")) max_tokens = v; break;
        case 11: if (is("temperature")) temperature = v; else if (is("tool_choice")) tool_choice = v; break;
        case 14: if (is("stream_options")) stream_options = v; break;
        case 15: if (is("response_format")) response_format = v; break;
        case 21: if (is("max_completion_tokens")) max_completion_tokens = v; break;
        default: break;
      }
    }
  }
};


// The reference path: the whole body as a Boost.JSON tree, every check with its OpenAI-style
// message. Used when the fast path below declines (every error, and anything unusual).
result<request> parse_with_tree(std::string_view body, endpoint kind) {
  auto parsed = parse_body_tree(body);
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) {
    return make_error(errc::invalid_request,
                      fmt::format("The request body must be a JSON object, but got {}.", json_kind_name(*parsed)));
  }
  request r;
  r.kind = kind;
  // Moved in (the object keeps the arena it was parsed into).
  r.set_body(std::move(parsed->get_object()));
  const known_fields o(r.body());

  auto* model = o.model;
  if (!model) return make_error(errc::invalid_request, "Missing required parameter: 'model'.");
  if (!model->is_string()) return type_error("model", "a string", *model);
  r.model = std::string(detail::sv(model->get_string()));
  if (r.model.empty()) return value_error("model", "must not be empty.");

  if (kind == endpoint::chat_completions) {
    auto* msgs = o.messages;
    if (!msgs) return make_error(errc::invalid_request, "Missing required parameter: 'messages'.");
    if (auto c = check_messages(*msgs); !c) return c.error();
  } else if (auto* p = o.prompt; p && !p->is_null()) {
    if (auto c = check_prompt(*p); !c) return c.error();
  }

  if (auto* v = o.stream; v && !v->is_null()) {
    if (!v->is_bool()) return type_error("stream", "a boolean", *v);
    r.stream = v->get_bool();
  }
  if (auto* v = o.stream_options; v && !v->is_null()) {
    if (!v->is_object()) return type_error("stream_options", "an object", *v);
    if (auto* iu = v->get_object().if_contains("include_usage"); iu && !iu->is_null()) {
      if (!iu->is_bool()) return type_error("stream_options.include_usage", "a boolean", *iu);
      r.include_usage = iu->get_bool();
    }
  }
  using st = request::raw_stream_fields::state;
  r.raw_stream.stream = !o.stream ? st::absent : o.stream->is_null() ? st::is_null : r.stream ? st::is_true : st::is_false;
  r.raw_stream.has_options = o.stream_options != nullptr;
  r.raw_stream.include_usage = r.include_usage;
  for (auto [f, v] : {std::pair<std::string_view, const boost::json::value*>{"max_tokens", o.max_tokens},
                       {"max_completion_tokens", o.max_completion_tokens}}) {
    if (!v || v->is_null()) continue;
    auto i = detail::as_integer(*v);
    if (!i) return type_error(f, "an integer", *v);
    if (*i < 1) return value_error(f, fmt::format("{} is less than the minimum of 1.", *i));
    if (f == "max_completion_tokens" || !r.max_tokens) r.max_tokens = *i;
  }
  if (auto* v = o.temperature; v && !v->is_null()) {
    auto d = detail::as_number(*v);
    if (!d) return type_error("temperature", "a decimal", *v);
    if (*d < 0 || *d > 2) return value_error("temperature", "must be between 0 and 2.");
    r.temperature = *d;
  }
  if (auto* v = o.top_p; v && !v->is_null()) {
    auto d = detail::as_number(*v);
    if (!d) return type_error("top_p", "a decimal", *v);
    if (*d < 0 || *d > 1) return value_error("top_p", "must be between 0 and 1.");
  }
  if (auto* v = o.seed; v && !v->is_null()) {
    auto i = detail::as_integer(*v);
    if (!i) return type_error("seed", "an integer", *v);
    r.seed = *i;
  }
  if (auto* v = o.n; v && !v->is_null()) {
    auto i = detail::as_integer(*v);
    if (!i) return type_error("n", "an integer", *v);
    if (*i < 1 || *i > 128) return value_error("n", "must be between 1 and 128.");
    r.n = *i;
  }
  if (auto* v = o.stop; v && !v->is_null()) {
    if (v->is_array()) {
      for (const auto& s : v->get_array()) {
        if (!s.is_string()) return type_error("stop", "a string or an array of strings", s);
      }
    } else if (!v->is_string()) {
      return type_error("stop", "a string or an array of strings", *v);
    }
  }
  if (auto* v = o.tools; v && !v->is_null()) {
    if (!v->is_array()) return type_error("tools", "an array", *v);
    for (const auto& t : v->get_array()) {
      if (!t.is_object()) return type_error("tools[]", "an object", t);
    }
  }
  if (auto* v = o.tool_choice; v && !v->is_null() && !v->is_string() && !v->is_object()) {
    return type_error("tool_choice", "a string or an object", *v);
  }
  if (auto* v = o.response_format; v && !v->is_null() && !v->is_object()) {
    return type_error("response_format", "an object", *v);
  }
  if (auto* v = o.logprobs; v && !v->is_null() && !v->is_bool() && kind == endpoint::chat_completions) {
    return type_error("logprobs", "a boolean", *v);
  }
  return r;
}

// ---- the fast path -------------------------------------------------------------------------------
// A strict single-pass scanner (api/json_scan.hpp) validates the whole body and reads the checked
// fields on the way. It only ever accepts: anything it does not take (invalid JSON, a failed
// check, escaped keys where a field is looked up, a number it does not read exactly, nesting
// deeper than k_request_max_depth) declines to the reference path, which then accepts or words the
// error exactly as before. The tree itself is built on first use (request::body()).
// tests/fuzz/fuzz_api checks that whatever the fast path accepts the reference path accepts with
// the same typed fields and body.

constexpr int k_request_max_depth = 64;  // the reference allows 128

class request_scanner : scan::json_scanner {
 public:
  request_scanner(std::string_view body, endpoint kind, request& r) noexcept
      : json_scanner(body, k_request_max_depth), kind_(kind), r_(r) {}

  // True: r_ holds the typed fields the reference would give. False: not taken (r_ may hold
  // partial results; the caller discards it).
  bool run() {
    ws();
    if (!at('{')) return false;
    // The last of duplicate keys wins, as in the tree: each occurrence is checked and overwrites.
    using st = request::raw_stream_fields::state;
    bool has_model = false, has_messages = false, include_usage = false;
    st stream = st::absent;
    bool has_options = false;
    std::optional<int64_t> max_tokens, max_completion_tokens, seed, n;
    std::optional<double> temperature;
    bool ok = fields(1, [&](std::string_view k) {
      switch (k.size()) {
        case 1:
          if (scan::key_is(k, "n")) return opt_integer(n) && (!n || (*n >= 1 && *n <= 128));
          break;
        case 4:
          if (scan::key_is(k, "seed")) return opt_integer(seed);
          if (scan::key_is(k, "stop")) return null_or_string() || strings(2);
          break;
        case 5:
          if (scan::key_is(k, "model")) {
            has_model = true;
            return model();
          }
          if (scan::key_is(k, "top_p")) {
            std::optional<double> d;
            return opt_number_in(0, 1, d);
          }
          if (scan::key_is(k, "tools")) return at('n') ? literal("null") : objects(2);
          break;
        case 6:
          if (scan::key_is(k, "stream")) return stream_flag(stream);
          if (scan::key_is(k, "prompt") && kind_ == endpoint::completions) return prompt(2);
          break;
        case 8:
          if (scan::key_is(k, "messages") && kind_ == endpoint::chat_completions) {
            has_messages = true;
            return messages(2);
          }
          if (scan::key_is(k, "logprobs") && kind_ == endpoint::chat_completions) {
            bool b;
            return opt_bool(b);
          }
          break;
        case 10:
          if (scan::key_is(k, "max_tokens")) return opt_integer(max_tokens) && (!max_tokens || *max_tokens >= 1);
          break;
        case 11:
          if (scan::key_is(k, "temperature")) return opt_number_in(0, 2, temperature);
          if (scan::key_is(k, "tool_choice")) return null_or_string() || (at('{') && skip_value(1));
          break;
        case 14:
          if (scan::key_is(k, "stream_options")) {
            has_options = true;
            include_usage = false;
            return at('n') ? literal("null") : stream_options(2, include_usage);
          }
          break;
        case 15:
          if (scan::key_is(k, "response_format")) return at('n') ? literal("null") : at('{') && skip_value(1);
          break;
        case 21:
          if (scan::key_is(k, "max_completion_tokens"))
            return opt_integer(max_completion_tokens) && (!max_completion_tokens || *max_completion_tokens >= 1);
          break;
        default: break;
      }
      return skip_value(1);
    });
    if (!ok || !at_end_utf8_ok() || !has_model || r_.model.empty()) return false;
    if (kind_ == endpoint::chat_completions && !has_messages) return false;
    r_.stream = stream == st::is_true;
    r_.include_usage = include_usage;
    r_.raw_stream.stream = stream;
    r_.raw_stream.has_options = has_options;
    r_.raw_stream.include_usage = include_usage;
    r_.max_tokens = max_completion_tokens ? max_completion_tokens : max_tokens;
    r_.temperature = temperature;
    r_.seed = seed;
    if (n) r_.n = *n;
    return true;
  }

 private:
  endpoint kind_;
  request& r_;

  // A string token, unescaped into out (replacing it).
  bool string_into(std::string& out) {
    if (!at('"')) return false;
    std::string_view raw;
    if (!scan_string(raw)) return false;
    out.clear();
    if (!escaped_) {
      out.assign(raw);
      return true;
    }
    return scan::append_unescaped(out, raw);
  }

  bool model() { return string_into(r_.model); }

  bool null_or_string() {
    if (at('n')) return literal("null");
    if (!at('"')) return false;
    std::string_view raw;
    return scan_string(raw);
  }

  bool stream_flag(request::raw_stream_fields::state& out) {
    using st = request::raw_stream_fields::state;
    if (at('n') && literal("null")) {
      out = st::is_null;
      return true;
    }
    if (at('t') && literal("true")) {
      out = st::is_true;
      return true;
    }
    out = st::is_false;
    return literal("false");
  }

  // null (out unchanged: absent) or true/false.
  bool opt_bool(bool& out) {
    if (at('n')) return literal("null");
    if (at('t') && literal("true")) {
      out = true;
      return true;
    }
    out = false;
    return literal("false");
  }

  // null (reset: a later duplicate null wins too) or an integer.
  bool opt_integer(std::optional<int64_t>& out) noexcept {
    out.reset();
    if (at('n')) return literal("null");
    int64_t v = 0;
    if (!integer(v)) return false;
    out = v;
    return true;
  }

  // null, or a number in [lo, hi] (lo, hi integers >= 0): an integer, or a decimal strictly
  // inside written as one digit, '.', and 1 to 6 digits. For those the reference's decimal
  // conversion gives the correctly rounded double (checked exhaustively for 0.0 .. 1.999999),
  // which from_chars gives too; anything else is left to the reference.
  bool opt_number_in(int64_t lo, int64_t hi, std::optional<double>& out) noexcept {
    out.reset();
    if (at('n')) return literal("null");
    const char* s = p_;
    if (end_ - s >= 3 && (s[0] == '0' || s[0] == '1') && s[1] == '.' && scan::is_digit(s[2])) {
      const char* p = s + 2;
      while (p < end_ && scan::is_digit(*p) && p - s < 8) ++p;
      if (p < end_ && (scan::is_digit(*p) || *p == 'e' || *p == 'E')) return false;
      double d = 0;
      if (std::from_chars(s, p, d).ptr != p) return false;
      if (!(d > static_cast<double>(lo) && d < static_cast<double>(hi))) return false;
      out = d;
      p_ = p;
      return true;
    }
    int64_t i = 0;
    if (!integer(i) || i < lo || i > hi) return false;
    out = static_cast<double>(i);
    return true;
  }

  // An array of strings.
  bool strings(int depth) {
    if (!at('[')) return false;
    return elements(depth, [&](bool) {
      if (!at('"')) return false;
      std::string_view raw;
      return scan_string(raw);
    });
  }

  // An array of objects.
  bool objects(int depth) {
    if (!at('[')) return false;
    return elements(depth, [&](bool) { return at('{') && skip_value(depth); });
  }

  // A string, or an array of strings, integers and arrays (tokens).
  bool prompt(int depth) {
    if (at('n')) return literal("null");
    if (at('"')) {
      std::string_view raw;
      return scan_string(raw);
    }
    if (!at('[')) return false;
    return elements(depth, [&](bool) {
      if (at('"')) {
        std::string_view raw;
        return scan_string(raw);
      }
      if (at('[')) return skip_value(depth);
      int64_t i;
      return integer(i);
    });
  }

  bool stream_options(int depth, bool& include_usage) {
    if (!at('{')) return false;
    return fields(depth, [&](std::string_view k) {
      if (scan::key_is(k, "include_usage")) {
        include_usage = false;
        return opt_bool(include_usage);
      }
      return skip_value(depth);
    });
  }

  // A non-empty array of message objects, each with a known role (a string without escapes),
  // content a string, an array or null, tool_calls an array or null (the last of duplicates wins).
  bool messages(int depth) {
    if (!at('[')) return false;
    bool any = false;
    bool ok = elements(depth, [&](bool) {
      any = true;
      if (!at('{')) return false;
      std::string_view role;
      bool has_role = false;
      bool content_ok = true, tool_calls_ok = true;
      if (!fields(depth + 1, [&](std::string_view k) {
            if (scan::key_is(k, "role")) {
              has_role = true;
              if (!at('"') || !scan_string(role)) return false;
              if (escaped_) role = {};  // not a known role as written: declined below
              return true;
            }
            if (scan::key_is(k, "content")) {
              content_ok = at('"') || at('[') || at('n');
              return skip_value(depth + 1);
            }
            if (scan::key_is(k, "tool_calls")) {
              tool_calls_ok = at('[') || at('n');
              return skip_value(depth + 1);
            }
            return skip_value(depth + 1);
          }))
        return false;
      return has_role && is_role(role) && content_ok && tool_calls_ok;
    });
    return ok && any;
  }
};

}  // namespace

result<request> parse_owned_openai_request(std::string&& body, endpoint kind) {
  request r;
  r.kind = kind;
  if (request_scanner(body, kind, r).run()) {
    r.raw_body = std::move(body);
    return r;
  }
  auto slow = parse_with_tree(body, kind);
  if (slow) slow->raw_body = std::move(body);
  return slow;
}

result<request> parse_openai_request(std::string_view body, endpoint kind) {
  return parse_owned_openai_request(std::string(body), kind);
}

result<request> parse_openai_request_reference(std::string_view body, endpoint kind) {
  auto r = parse_with_tree(body, kind);
  if (r) r->raw_body.assign(body);
  return r;
}

// ---- request's body tree --------------------------------------------------------------------------

const boost::json::object& request::body() const {
  if (auto* b = body_.get()) return *b;
  // raw_body was validated when the request was parsed, so this does not fail; if a caller put
  // something else there, the body is empty rather than half-built.
  if (!raw_body.empty()) {
    if (auto v = parse_body_tree(raw_body); v && v->is_object())  // move-constructed: keeps the arena
      return body_.publish(new boost::json::object(std::move(v->get_object())));
  }
  return body_.publish(new boost::json::object());
}

boost::json::object& request::mutable_body() {
  auto& b = const_cast<boost::json::object&>(body());  // (a writer owns the request: no reader races it)
  raw_body.clear();
  return b;
}

void request::set_body(boost::json::object b) {
  body_.reset(new boost::json::object(std::move(b)));  // move-constructed: keeps its storage
  raw_body.clear();
}

}  // namespace fp::api
