// Stream chunks: building chat.completion.chunk / text_completion JSON and the fast chunk parser.
#include <fmt/format.h>
#include <simdjson.h>

#include <cstring>

#include "api/api.hpp"
#include "api/json_scan.hpp"
#include "api/json_util.hpp"

namespace fp::api {

std::string_view finish_reason_name(finish_reason f) noexcept {
  switch (f) {
    case finish_reason::none: return "";
    case finish_reason::stop: return "stop";
    case finish_reason::length: return "length";
    case finish_reason::tool_calls: return "tool_calls";
    case finish_reason::content_filter: return "content_filter";
    case finish_reason::error: return "error";
  }
  return "";
}

namespace detail {
void append_chunk_head(std::string& out, const chunk_meta& m, std::string_view object) {
  out += R"({"id":)";
  append_json_string(out, m.id);
  out += R"(,"object":")";
  out += object;
  out += R"(","created":)";
  append_int(out, m.created);
  out += R"(,"model":)";
  append_json_string(out, m.model);
  if (!m.system_fingerprint.empty()) {
    out += R"(,"system_fingerprint":)";
    append_json_string(out, m.system_fingerprint);
  }
}
}  // namespace detail

namespace {
void append_finish(std::string& out, finish_reason f) {
  if (f == finish_reason::none) {
    out += "null";
  } else {
    out.push_back('"');
    out += finish_reason_name(f);
    out.push_back('"');
  }
}
}  // namespace

void append_usage_json(std::string& out, const usage& u) {
  out += R"({"prompt_tokens":)";
  detail::append_int(out, u.prompt_tokens);
  out += R"(,"completion_tokens":)";
  detail::append_int(out, u.completion_tokens);
  out += R"(,"total_tokens":)";
  detail::append_int(out, u.total());
  out += R"(,"prompt_tokens_details":{"cached_tokens":)";
  detail::append_int(out, u.cached_prompt_tokens);
  out += "}}";
}

std::string make_chat_chunk_json(const chunk_meta& m, const chunk_delta& d) {
  std::string out;
  out.reserve(160 + m.id.size() + m.model.size() + (d.content ? d.content->size() : 0));
  detail::append_chunk_head(out, m, "chat.completion.chunk");
  out += R"(,"choices":[{"index":0,"delta":{)";
  bool comma = false;
  if (!d.role.empty()) {
    out += R"("role":)";
    append_json_string(out, d.role);
    comma = true;
  }
  if (d.content) {
    if (comma) out.push_back(',');
    out += R"("content":)";
    append_json_string(out, *d.content);
    comma = true;
  }
  if (!d.tool_calls.empty()) {
    if (comma) out.push_back(',');
    out += R"("tool_calls":[)";
    bool first = true;
    for (const auto& tc : d.tool_calls) {
      if (!first) out.push_back(',');
      first = false;
      out += R"({"index":)";
      detail::append_int(out, tc.index);
      if (!tc.id.empty()) {
        out += R"(,"id":)";
        append_json_string(out, tc.id);
        out += R"(,"type":"function")";
      }
      out += R"(,"function":{)";
      if (!tc.name.empty()) {
        out += R"("name":)";
        append_json_string(out, tc.name);
        out.push_back(',');
      }
      out += R"("arguments":)";
      append_json_string(out, tc.arguments);
      out += "}}";
    }
    out.push_back(']');
  }
  out += R"(},"logprobs":null,"finish_reason":)";
  append_finish(out, d.finish);
  out += "}]}";
  return out;
}

std::string make_usage_chunk_json(const chunk_meta& m, const usage& u, endpoint kind) {
  std::string out;
  out.reserve(240);
  detail::append_chunk_head(out, m, kind == endpoint::completions ? "text_completion" : "chat.completion.chunk");
  out += R"(,"choices":[],"usage":)";
  append_usage_json(out, u);
  out.push_back('}');
  return out;
}

std::string make_completion_chunk_json(const chunk_meta& m, std::string_view text, finish_reason f) {
  std::string out;
  out.reserve(140 + m.id.size() + m.model.size() + text.size());
  detail::append_chunk_head(out, m, "text_completion");
  out += R"(,"choices":[{"text":)";
  append_json_string(out, text);
  out += R"(,"index":0,"logprobs":null,"finish_reason":)";
  append_finish(out, f);
  out += "}]}";
  return out;
}

chunk make_chat_chunk(const chunk_meta& m, const chunk_delta& d) {
  chunk c;
  c.json = make_chat_chunk_json(m, d);
  if (d.content) c.content = std::string(*d.content);
  c.finish = d.finish;
  c.has_tool_calls = !d.tool_calls.empty();
  return c;
}

chunk make_usage_chunk(const chunk_meta& m, const usage& u, endpoint kind) {
  chunk c;
  c.json = make_usage_chunk_json(m, u, kind);
  c.usage = u;
  return c;
}

chunk make_completion_chunk(const chunk_meta& m, std::string_view text, finish_reason f) {
  chunk c;
  c.json = make_completion_chunk_json(m, text, f);
  c.content = std::string(text);
  c.finish = f;
  return c;
}

// ---- fast chunk parser (simdjson On-Demand) -----------------------------------------------------

namespace {

namespace od = simdjson::ondemand;

error bad_chunk(std::string_view why) {
  return make_error(errc::upstream_error, std::string("malformed stream chunk from upstream: ") + std::string(why),
                    502);
}

// Reads an integer that may be null/absent; returns false on a type error.
bool read_count(od::value v, int64_t& out) {
  bool is_null = false;
  if (v.is_null().get(is_null) == simdjson::SUCCESS && is_null) return true;
  int64_t i = 0;
  if (v.get_int64().get(i) != simdjson::SUCCESS) return false;
  out = i;
  return true;
}

bool read_usage(od::value v, std::optional<usage>& out) {
  bool is_null = false;
  if (v.is_null().get(is_null) == simdjson::SUCCESS && is_null) return true;
  od::object o;
  if (v.get_object().get(o) != simdjson::SUCCESS) return false;
  usage u;
  for (auto field : o) {
    std::string_view k;
    if (field.unescaped_key().get(k) != simdjson::SUCCESS) return false;
    od::value fv;
    if (field.value().get(fv) != simdjson::SUCCESS) return false;
    if (k == "prompt_tokens") {
      if (!read_count(fv, u.prompt_tokens)) return false;
    } else if (k == "completion_tokens") {
      if (!read_count(fv, u.completion_tokens)) return false;
    } else if (k == "prompt_tokens_details") {
      bool n2 = false;
      if (fv.is_null().get(n2) == simdjson::SUCCESS && n2) continue;
      od::object d;
      if (fv.get_object().get(d) != simdjson::SUCCESS) return false;
      for (auto df : d) {
        std::string_view dk;
        if (df.unescaped_key().get(dk) != simdjson::SUCCESS) return false;
        if (dk == "cached_tokens") {
          od::value dv;
          if (df.value().get(dv) != simdjson::SUCCESS || !read_count(dv, u.cached_prompt_tokens)) return false;
        }
      }
    }
  }
  out = u;
  return true;
}

// Reads a string-or-null into out (appending); false on a type error.
bool read_opt_string(od::value v, std::string& out, bool& present) {
  bool is_null = false;
  if (v.is_null().get(is_null) == simdjson::SUCCESS && is_null) return true;
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return false;
  out.append(s);
  present = true;
  return true;
}

bool read_choice(od::value v, chunk& c) {
  od::object o;
  if (v.get_object().get(o) != simdjson::SUCCESS) return false;
  for (auto field : o) {
    std::string_view k;
    if (field.unescaped_key().get(k) != simdjson::SUCCESS) return false;
    od::value fv;
    if (field.value().get(fv) != simdjson::SUCCESS) return false;
    if (k == "delta" || k == "message") {
      bool is_null = false;
      if (fv.is_null().get(is_null) == simdjson::SUCCESS && is_null) continue;
      od::object d;
      if (fv.get_object().get(d) != simdjson::SUCCESS) return false;
      for (auto df : d) {
        std::string_view dk;
        if (df.unescaped_key().get(dk) != simdjson::SUCCESS) return false;
        od::value dv;
        if (df.value().get(dv) != simdjson::SUCCESS) return false;
        if (dk == "content") {
          bool present = false;
          if (!read_opt_string(dv, c.content, present)) return false;
        } else if (dk == "tool_calls" || dk == "function_call") {
          bool n2 = false;
          if (dv.is_null().get(n2) == simdjson::SUCCESS && n2) continue;
          c.has_tool_calls = true;
        }
      }
    } else if (k == "text") {
      bool present = false;
      if (!read_opt_string(fv, c.content, present)) return false;
    } else if (k == "finish_reason") {
      bool is_null = false;
      if (fv.is_null().get(is_null) == simdjson::SUCCESS && is_null) continue;
      std::string_view s;
      if (fv.get_string().get(s) != simdjson::SUCCESS) return false;
      c.finish = finish_reason_from_name(s);
    }
  }
  return true;
}

}  // namespace

namespace {

// Reads an OpenAI stream chunk or complete response (the same shape for what is read here: choice
// 0's content / finish reason / tool calls, usage, an error object) with the on-demand parser.
// `why` names what was wrong; an {"error":...} object -> its message in `upstream_message`.
struct openai_object {
  explicit openai_object(chunk& into) : c(into) {}
  chunk& c;
  bool has_choices = false;
  bool is_error = false;
  std::string upstream_message = "upstream error";
};

result<void> read_openai_object(std::string_view text, openai_object& out, error (*bad)(std::string_view)) {
  thread_local od::parser parser;
  thread_local std::string padded;
  padded.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  padded.assign(text);
  od::document doc;
  if (parser.iterate(padded.data(), padded.size(), padded.capacity()).get(doc) != simdjson::SUCCESS)
    return bad("not JSON");
  od::object root;
  if (doc.get_object().get(root) != simdjson::SUCCESS) return bad("not a JSON object");
  for (auto field : root) {
    std::string_view k;
    if (field.unescaped_key().get(k) != simdjson::SUCCESS) return bad("bad key");
    od::value fv;
    if (field.value().get(fv) != simdjson::SUCCESS) return bad("bad value");
    if (k == "choices") {
      od::array arr;
      if (fv.get_array().get(arr) != simdjson::SUCCESS) return bad("'choices' is not an array");
      out.has_choices = true;
      bool first = true;
      for (auto el : arr) {
        od::value ev;
        if (el.get(ev) != simdjson::SUCCESS) return bad("bad choice");
        if (first && !read_choice(ev, out.c)) return bad("bad choice");
        first = false;  // later choices (n > 1) are skipped by the iterator
      }
    } else if (k == "usage") {
      if (!read_usage(fv, out.c.usage)) return bad("bad usage");
    } else if (k == "error") {
      bool is_null = false;
      if (fv.is_null().get(is_null) == simdjson::SUCCESS && is_null) continue;
      out.is_error = true;
      od::object eo;
      if (fv.get_object().get(eo) == simdjson::SUCCESS) {
        for (auto ef : eo) {
          std::string_view ek;
          if (ef.unescaped_key().get(ek) != simdjson::SUCCESS) break;
          if (ek == "message") {
            std::string_view m;
            if (ef.value().get_string().get(m) == simdjson::SUCCESS) out.upstream_message = std::string(m);
          }
        }
      }
      return {};
    }
  }
  return {};
}

error bad_response(std::string_view why) {
  return make_error(errc::upstream_error, fmt::format("The upstream response is not valid: {}", why), 502);
}

}  // namespace

// ---- single-pass chunk scanner ------------------------------------------------------------------
//
// The common chunk shapes in one pass over the text, without the padded copy and the index that
// the on-demand parser needs. It takes only what it checks completely: strictly valid JSON (UTF-8
// checked when a string has bytes >= 0x80), keys without escapes, nesting below k_max_depth,
// token counts as plain non-negative integers, no non-null "error". For those it extracts what
// read_openai_object() does, in the same order (duplicate keys act the same: content appended,
// the last finish_reason / usage wins). Anything else, and every error, goes to the reference
// (run() returns false), so results and error messages are the reference's by construction; the
// differential fuzz target (tests/fuzz/fuzz_chunk_diff.cpp) checks it. Complete responses are
// read with it too (the same fields; a response without "choices" goes to the reference).
// The generic scanning (strings, escapes, numbers, nesting) is api/json_scan.hpp.

namespace {

using namespace scan;

constexpr int k_max_depth = 32;

class chunk_scanner : json_scanner {
 public:
  chunk_scanner(std::string_view text, chunk& into) noexcept : json_scanner(text, k_max_depth), c_(into) {}

  // True: `c_` holds what the reference would have extracted. False: not taken; `c_` may hold
  // partial results (the caller clears them). `resume`: the length of a start of the text known
  // to be a checkpoint() of a text this scanner took (the scan goes on from there).
  bool run(size_t resume = 0) {
    bool extracted = false;  // a root field that changes `c_` came
    if (resume == 0) {
      ws();
      if (!at('{')) return false;
      ++p_;
      ws();
      if (at('}')) {
        ++p_;
        return finish(0);
      }
    } else {
      p_ = begin_ + resume;
      ws();
    }
    for (;;) {
      if (!at('"')) return false;
      std::string_view k;
      if (!scan_string(k) || escaped_) return false;
      ws();
      if (!at(':')) return false;
      ++p_;
      ws();
      if (key_is(k, "choices")) {
        if (!at('[')) return false;
        extracted = true;
        has_choices_ = true;
        if (!elements(2, [&](bool first) { return first ? at('{') && read_choice(3) : skip_value(3); }))
          return false;
      } else if (key_is(k, "usage")) {
        extracted = true;
        if (!read_usage(2)) return false;
      } else if (key_is(k, "error")) {
        if (!literal("null")) return false;  // a real error object: the reference words it
      } else if (!skip_value(2)) {
        return false;
      }
      ws();
      if (at(',')) {
        ++p_;
        if (!extracted) checkpoint_ = static_cast<size_t>(p_ - begin_);
        ws();
      } else if (at('}')) {
        ++p_;
        return finish(resume);
      } else {
        return false;
      }
    }
  }

  // After a run() that returned true: the length of the text's start (up to a ',' between root
  // fields) that only holds fields nothing is extracted from (id, object, created, model, ...);
  // 0 if none. Another text with the same start may be scanned from there (run(checkpoint)).
  size_t checkpoint() const noexcept { return checkpoint_; }

  // After a run() that returned true: whether the text had a "choices" field.
  bool has_choices() const noexcept { return has_choices_; }

  // After a run() that returned true: whether exactly one string token gave the content (delta /
  // message content or text), and where it is (from its opening quote to past its closing one).
  bool single_content(size_t& at, size_t& end) const noexcept {
    if (content_strings_ != 1) return false;
    at = static_cast<size_t>(content_at_ - begin_);
    end = static_cast<size_t>(content_end_ - begin_);
    return true;
  }

  // The text is a text this scanner took with another string token in [from, to) (the rest of
  // the bytes are the same): true when [from, to) is exactly one valid string, then its
  // unescaped text is appended to the content.
  bool content_string_at(size_t from, size_t to) {
    p_ = begin_ + from;
    std::string_view raw;
    if (!at('"') || !scan_string(raw) || p_ != begin_ + to) return false;
    if ((non_ascii_ & k_highs) != 0 && !simdjson::validate_utf8(raw.data(), raw.size())) return false;
    if (!escaped_) {
      c_.content.append(raw);
      return true;
    }
    return append_unescaped(c_.content, raw);
  }

 private:
  chunk& c_;
  size_t checkpoint_ = 0;
  const char* content_at_ = nullptr;  // the last string token appended to the content
  const char* content_end_ = nullptr;
  int content_strings_ = 0;           // how many string tokens were appended to the content
  bool has_choices_ = false;

  // The start before `from` ends in ',' (ASCII), so checking the rest's UTF-8 alone is enough.
  bool finish(size_t from) noexcept { return at_end_utf8_ok(from); }

  // null, or a string appended (unescaped) to out (the content).
  bool read_opt_string(std::string& out) {
    if (at('n')) return literal("null");
    if (!at('"')) return false;
    std::string_view raw;
    const char* token = p_;
    if (!scan_string(raw)) return false;
    content_at_ = token;
    content_end_ = p_;
    ++content_strings_;
    if (!escaped_) {
      out.append(raw);
      return true;
    }
    return append_unescaped(out, raw);
  }

  // null (out unchanged), or a plain non-negative integer that fits int64.
  bool read_count(int64_t& out) noexcept {
    if (at('n')) return literal("null");
    return integer(out, /*negative_ok=*/false);
  }

  bool read_choice(int depth) {
    return fields(depth, [&](std::string_view k) {
      if (key_is(k, "delta") || key_is(k, "message")) {
        if (at('n')) return literal("null");
        if (!at('{')) return false;
        return fields(depth + 1, [&](std::string_view dk) {
          if (key_is(dk, "content")) return read_opt_string(c_.content);
          if (key_is(dk, "tool_calls") || key_is(dk, "function_call")) {
            if (at('n')) return literal("null");
            c_.has_tool_calls = true;
          }
          return skip_value(depth + 1);
        });
      }
      if (key_is(k, "text")) return read_opt_string(c_.content);
      if (key_is(k, "finish_reason")) {
        if (at('n')) return literal("null");
        if (!at('"')) return false;
        std::string_view raw;
        if (!scan_string(raw) || escaped_) return false;
        c_.finish = finish_reason_from_name(raw);
        return true;
      }
      return skip_value(depth);
    });
  }

  bool read_usage(int depth) {
    if (at('n')) return literal("null");
    if (!at('{')) return false;
    usage u;
    bool ok = fields(depth, [&](std::string_view k) {
      if (key_is(k, "prompt_tokens")) return read_count(u.prompt_tokens);
      if (key_is(k, "completion_tokens")) return read_count(u.completion_tokens);
      if (key_is(k, "prompt_tokens_details")) {
        if (at('n')) return literal("null");
        if (!at('{')) return false;
        return fields(depth + 1, [&](std::string_view dk) {
          if (key_is(dk, "cached_tokens")) return read_count(u.cached_prompt_tokens);
          return skip_value(depth + 1);
        });
      }
      return skip_value(depth);
    });
    if (!ok) return false;
    c_.usage = u;
    return true;
  }
};

}  // namespace

result<chunk> parse_openai_chunk(std::string_view data) {
  chunk c;
  if (auto r = parse_openai_chunk_into(data, c); !r) return r.error();
  return c;
}

namespace {
void clear_parsed(chunk& c) noexcept {
  c.content.clear();
  c.finish = finish_reason::none;
  c.usage.reset();
  c.has_tool_calls = false;
}
}  // namespace

result<void> parse_openai_chunk_into(std::string_view data, chunk& out) {
  clear_parsed(out);
  if (!chunk_scanner(data, out).run()) return parse_openai_chunk_reference_into(data, out);
  out.json.assign(data);  // into the buffer it already has
  return {};
}

result<void> openai_chunk_parser::parse_into(std::string_view data, chunk& out) {
  clear_parsed(out);
  // Content chunks of a stream differ only in their content string: when everything around it
  // is the same bytes as in the last such chunk, only the string is read.
  if (same_shape_.on) {
    const auto& t = same_shape_;
    size_t tail = t.text.size() - t.content_end;
    if (data.size() >= t.content_at + 2 + tail && std::memcmp(data.data(), t.text.data(), t.content_at) == 0 &&
        std::memcmp(data.data() + data.size() - tail, t.text.data() + t.content_end, tail) == 0) {
      if (chunk_scanner(data, out).content_string_at(t.content_at, data.size() - tail)) {
        out.finish = t.finish;
        out.usage = t.usage;
        out.has_tool_calls = t.has_tool_calls;
        out.json.assign(data);
        return {};
      }
      clear_parsed(out);
    }
  }
  // The fields before "choices" (id, object, created, model, ...) repeat in every chunk of a
  // stream: when they match the last scanned chunk's, the scan starts after them.
  size_t resume = !prefix_.empty() && data.starts_with(prefix_) ? prefix_.size() : 0;
  chunk_scanner sc(data, out);
  if (!sc.run(resume)) {
    prefix_.clear();
    same_shape_.on = false;
    return parse_openai_chunk_reference_into(data, out);
  }
  if (resume == 0) prefix_.assign(data.substr(0, sc.checkpoint()));
  auto& t = same_shape_;
  t.on = sc.single_content(t.content_at, t.content_end);
  if (t.on) {
    t.text.assign(data);
    t.finish = out.finish;
    t.usage = out.usage;
    t.has_tool_calls = out.has_tool_calls;
  }
  out.json.assign(data);
  return {};
}

result<void> parse_openai_chunk_reference_into(std::string_view data, chunk& out) {
  clear_parsed(out);
  openai_object o(out);
  if (auto r = read_openai_object(data, o, bad_chunk); !r) return r.error();
  if (o.is_error) return make_error(errc::upstream_error, std::move(o.upstream_message), 502);
  out.json.assign(data);  // into the buffer it already has
  return {};
}

// A complete response, read like a chunk (the text is kept as is): the scanner first, the
// reference for anything it does not take (every error, an {"error":...} object, no "choices").
result<response> parse_openai_response(std::string_view body) { return parse_owned_openai_response(std::string(body)); }

namespace {
result<response> response_from(std::string&& body, chunk& c) {
  response r;
  r.json = std::move(body);
  r.content = std::move(c.content);
  r.finish = c.finish;
  r.usage = c.usage;
  return r;
}
}  // namespace

result<response> parse_owned_openai_response(std::string&& body) {
  chunk c;
  if (chunk_scanner sc(body, c); sc.run() && sc.has_choices()) return response_from(std::move(body), c);
  return parse_openai_response_reference(std::move(body));
}

result<response> parse_openai_response_reference(std::string&& body) {
  chunk c;
  openai_object o(c);
  if (auto r = read_openai_object(body, o, bad_response); !r) return r.error();
  if (o.is_error) return upstream_error_from_body(502, body, wire_format::openai);
  if (!o.has_choices) return make_error(errc::upstream_error, "the upstream response has no 'choices'", 502);
  return response_from(std::move(body), c);
}

}  // namespace fp::api
