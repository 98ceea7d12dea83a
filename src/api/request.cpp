// Client request parsing and validation (OpenAI chat/completions and legacy completions).
#include <fmt/format.h>

#include <cmath>
#include <cstddef>
#include <memory>

#include <simdjson.h>

#include "api/api.hpp"
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
class request_arena final : public boost::json::memory_resource {
 public:
  static constexpr size_t inline_bytes = 864;  // the whole arena stays a small (tcache) block

 private:
  void* do_allocate(size_t n, size_t align) override { return mono_.allocate(n, align); }
  void do_deallocate(void*, size_t, size_t) override {}  // all at once, with the arena
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  alignas(std::max_align_t) unsigned char first_[inline_bytes];
  boost::json::monotonic_resource mono_{first_, inline_bytes};
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
// simdjson's DOM parser validates the body (a few times faster than building the Boost.JSON tree)
// and the checked fields are read from its tape. It only ever accepts: anything it does not like
// (invalid JSON, a failed check, a number at a limit, nesting deeper than fast_max_depth) declines
// to the reference path, which then accepts or words the error exactly as before. The tree itself
// is built on first use (request::body()). tests/fuzz/fuzz_api checks that whatever the fast path
// accepts the reference path accepts with the same typed fields.

namespace sj = simdjson::dom;
constexpr size_t fast_max_depth = 64;
constexpr size_t fast_max_bytes = 1 << 20;

bool fast_integer(sj::element v, int64_t& out) noexcept {
  switch (v.type()) {
    case sj::element_type::INT64: out = v.get_int64().value_unsafe(); return true;
    case sj::element_type::DOUBLE: {
      double d = v.get_double().value_unsafe();
      if (!(std::fabs(d) < 9.0e15) || std::floor(d) != d) return false;  // exact doubles only
      out = static_cast<int64_t>(d);
      return true;
    }
    default: return false;  // uint64 beyond int64 and non-numbers: the reference path decides
  }
}

// A number strictly inside (lo, hi), or an integer at a limit; a decimal at a limit (0.0, 2.0) is
// left to the reference path (its decimal parsing may round the last bit differently).
bool fast_number_in(sj::element v, double lo, double hi, double& out) noexcept {
  if (v.type() == sj::element_type::INT64) {
    int64_t i = v.get_int64().value_unsafe();
    out = static_cast<double>(i);
    return out >= lo && out <= hi;
  }
  if (v.type() != sj::element_type::DOUBLE) return false;
  out = v.get_double().value_unsafe();
  return out > lo && out < hi;
}

bool is_null(sj::element v) noexcept { return v.type() == sj::element_type::NULL_VALUE; }

bool fast_messages(sj::element v) noexcept {
  sj::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS || arr.size() == 0) return false;
  for (sj::element m : arr) {
    sj::object o;
    if (m.get_object().get(o) != simdjson::SUCCESS) return false;
    std::string_view role;
    bool has_role = false;
    sj::element content, tool_calls;
    bool has_content = false, has_tool_calls = false;
    for (auto [k, fv] : o) {  // the last of duplicate keys wins, as in the tree
      if (k == "role") {
        has_role = true;
        if (fv.get_string().get(role) != simdjson::SUCCESS) return false;
      } else if (k == "content") {
        has_content = true;
        content = fv;
      } else if (k == "tool_calls") {
        has_tool_calls = true;
        tool_calls = fv;
      }
    }
    if (!has_role || !is_role(role)) return false;
    if (has_content && !content.is_string() && !content.is_array() && !is_null(content)) return false;
    if (has_tool_calls && !tool_calls.is_array() && !is_null(tool_calls)) return false;
  }
  return true;
}

bool fast_prompt(sj::element v) noexcept {
  if (v.is_string()) return true;
  sj::array arr;
  if (v.get_array().get(arr) != simdjson::SUCCESS) return false;
  for (sj::element e : arr) {
    if (!e.is_string() && !e.is_int64() && !e.is_array()) return false;
  }
  return true;
}

// Fills r's typed fields from a padded body (SIMDJSON_PADDING readable bytes past its end).
bool fast_parse(const char* data, size_t size, endpoint kind, request& r) noexcept {
  if (size > fast_max_bytes) return false;  // bounds the per-thread parser's memory
  thread_local sj::parser parser;
  if (parser.max_depth() != fast_max_depth && parser.allocate(4096, fast_max_depth) != simdjson::SUCCESS) return false;
  sj::element root;
  if (parser.parse(data, size, false).get(root) != simdjson::SUCCESS) return false;
  sj::object top;
  if (root.get_object().get(top) != simdjson::SUCCESS) return false;
  struct field {
    sj::element v;
    bool set = false;
    void operator=(sj::element e) noexcept { v = e, set = true; }
    bool given() const noexcept { return set && !is_null(v); }  // present and not null
  };
  field model, messages, prompt, stream, stream_options, max_tokens, max_completion_tokens, temperature,
      top_p, seed, n, stop, tools, tool_choice, response_format, logprobs;
  for (auto [k, v] : top) {
    switch (k.size()) {
      case 1: if (k == "n") n = v; break;
      case 4: if (k == "seed") seed = v; else if (k == "stop") stop = v; break;
      case 5: if (k == "model") model = v; else if (k == "top_p") top_p = v; else if (k == "tools") tools = v; break;
      case 6: if (k == "stream") stream = v; else if (k == "prompt") prompt = v; break;
      case 8: if (k == "messages") messages = v; else if (k == "logprobs") logprobs = v; break;
      case 10: if (k == "max_tokens") max_tokens = v; break;
      case 11: if (k == "temperature") temperature = v; else if (k == "tool_choice") tool_choice = v; break;
      case 14: if (k == "stream_options") stream_options = v; break;
      case 15: if (k == "response_format") response_format = v; break;
      case 21: if (k == "max_completion_tokens") max_completion_tokens = v; break;
      default: break;
    }
  }
  std::string_view m;
  if (!model.set || model.v.get_string().get(m) != simdjson::SUCCESS || m.empty()) return false;
  if (kind == endpoint::chat_completions) {
    if (!messages.set || !fast_messages(messages.v)) return false;
  } else if (prompt.given() && !fast_prompt(prompt.v)) {
    return false;
  }
  if (stream.given() && stream.v.get_bool().get(r.stream) != simdjson::SUCCESS) return false;
  if (stream_options.given()) {
    sj::object so;
    if (stream_options.v.get_object().get(so) != simdjson::SUCCESS) return false;
    field iu;
    for (auto [k, v] : so) {
      if (k == "include_usage") iu = v;
    }
    if (iu.given() && iu.v.get_bool().get(r.include_usage) != simdjson::SUCCESS) return false;
  }
  using st = request::raw_stream_fields::state;
  r.raw_stream.stream = !stream.set ? st::absent : is_null(stream.v) ? st::is_null : r.stream ? st::is_true : st::is_false;
  r.raw_stream.has_options = stream_options.set;
  r.raw_stream.include_usage = r.include_usage;
  int64_t i = 0;
  if (max_tokens.given()) {
    if (!fast_integer(max_tokens.v, i) || i < 1) return false;
    r.max_tokens = i;
  }
  if (max_completion_tokens.given()) {
    if (!fast_integer(max_completion_tokens.v, i) || i < 1) return false;
    r.max_tokens = i;
  }
  double d = 0;
  if (temperature.given()) {
    if (!fast_number_in(temperature.v, 0, 2, d)) return false;
    r.temperature = d;
  }
  if (top_p.given() && !fast_number_in(top_p.v, 0, 1, d)) return false;
  if (seed.given()) {
    if (!fast_integer(seed.v, i)) return false;
    r.seed = i;
  }
  if (n.given()) {
    if (!fast_integer(n.v, i) || i < 1 || i > 128) return false;
    r.n = i;
  }
  if (stop.given()) {
    if (sj::array a; stop.v.get_array().get(a) == simdjson::SUCCESS) {
      for (sj::element s : a) {
        if (!s.is_string()) return false;
      }
    } else if (!stop.v.is_string()) {
      return false;
    }
  }
  if (tools.given()) {
    sj::array a;
    if (tools.v.get_array().get(a) != simdjson::SUCCESS) return false;
    for (sj::element t : a) {
      if (!t.is_object()) return false;
    }
  }
  if (tool_choice.given() && !tool_choice.v.is_string() && !tool_choice.v.is_object()) return false;
  if (response_format.given() && !response_format.v.is_object()) return false;
  if (logprobs.given() && !logprobs.v.is_bool() && kind == endpoint::chat_completions) return false;
  r.model.assign(m);
  return true;
}

result<request> parse_padded(std::string&& body, endpoint kind) {
  request r;
  r.kind = kind;
  if (fast_parse(body.data(), body.size(), kind, r)) {
    r.raw_body = std::move(body);
    return r;
  }
  auto slow = parse_with_tree(body, kind);
  if (slow) slow->raw_body = std::move(body);
  return slow;
}

}  // namespace

result<request> parse_owned_openai_request(std::string&& body, endpoint kind) {
  if (body.capacity() - body.size() < simdjson::SIMDJSON_PADDING) body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  return parse_padded(std::move(body), kind);
}

result<request> parse_openai_request(std::string_view body, endpoint kind) {
  std::string b;
  b.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  b.assign(body);
  return parse_padded(std::move(b), kind);
}

result<request> parse_openai_request_reference(std::string_view body, endpoint kind) {
  auto r = parse_with_tree(body, kind);
  if (r) r->raw_body.assign(body);
  return r;
}

// ---- request's body tree --------------------------------------------------------------------------

const boost::json::object& request::body() const {
  if (!body_) {
    // raw_body was validated when the request was parsed, so this does not fail; if a caller put
    // something else there, the body is empty rather than half-built.
    result<boost::json::value> v = make_error(errc::invalid_request, "no body");
    if (!raw_body.empty()) v = parse_body_tree(raw_body);
    if (v && v->is_object()) {
      body_.emplace(std::move(v->get_object()));  // move-constructed: keeps the arena
    } else {
      body_.emplace();
    }
  }
  return *body_;
}

boost::json::object& request::mutable_body() {
  (void)body();
  raw_body.clear();
  return *body_;
}

void request::set_body(boost::json::object b) {
  body_.emplace(std::move(b));
  raw_body.clear();
}

}  // namespace fp::api
