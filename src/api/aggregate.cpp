// Chunk sequence <-> complete response, and complete-response builders/parsers.
#include <fmt/format.h>

#include <algorithm>

#include "api/api.hpp"
#include "api/json_util.hpp"

namespace fp::api {

namespace json = boost::json;
using detail::member_int;
using detail::member_string;
using detail::sv;

namespace {

usage usage_from_json(const json::object& o) {
  usage u;
  u.prompt_tokens = member_int(o, "prompt_tokens");
  u.completion_tokens = member_int(o, "completion_tokens");
  if (auto* d = o.if_contains("prompt_tokens_details"); d && d->is_object()) {
    u.cached_prompt_tokens = member_int(d->get_object(), "cached_tokens");
  }
  return u;
}

}  // namespace

// ---- aggregator ---------------------------------------------------------------------------------

chunk_aggregator::choice_acc& chunk_aggregator::choice(int64_t index) {
  for (auto& c : choices_) {
    if (c.index == index) return c;
  }
  choices_.emplace_back();
  choices_.back().index = index;
  return choices_.back();
}

result<void> chunk_aggregator::add(std::string_view chunk_json) {
  auto parsed = detail::parse_json(chunk_json, "A stream chunk");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::corrupt_data, "a stream chunk is not a JSON object");
  const auto& o = parsed->get_object();
  if (o.contains("error")) return make_error(errc::upstream_error, "the stream carried an error event");
  if (id_.empty()) id_ = member_string(o, "id");
  if (model_.empty()) model_ = member_string(o, "model");
  if (fingerprint_.empty()) fingerprint_ = member_string(o, "system_fingerprint");
  if (created_ == 0) created_ = member_int(o, "created");
  if (member_string(o, "object") == "text_completion") text_completion_ = true;
  if (auto* u = o.if_contains("usage"); u && u->is_object()) {
    usage_ = usage_from_json(u->get_object());
    usage_json_ = *u;
  }
  auto* ch = o.if_contains("choices");
  if (!ch || !ch->is_array()) return {};
  for (const auto& cv : ch->get_array()) {
    if (!cv.is_object()) continue;
    const auto& co = cv.get_object();
    auto& acc = choice(member_int(co, "index"));
    if (auto f = member_string(co, "finish_reason"); !f.empty()) acc.finish = f;
    if (auto* t = co.if_contains("text"); t && t->is_string()) {
      acc.content += sv(t->get_string());
      acc.has_content = true;
    }
    if (auto* lp = co.if_contains("logprobs"); lp && lp->is_object()) {
      acc.has_logprobs = true;
      if (auto* lc = lp->get_object().if_contains("content"); lc && lc->is_array()) {
        for (const auto& e : lc->get_array()) acc.logprobs_content.push_back(e);
      } else {
        acc.text_logprobs = *lp;
      }
    }
    auto* dv = co.if_contains("delta");
    if (!dv || !dv->is_object()) continue;
    const auto& d = dv->get_object();
    if (auto r = member_string(d, "role"); !r.empty()) acc.role = r;
    if (auto* c = d.if_contains("content"); c && c->is_string()) {
      acc.content += sv(c->get_string());
      acc.has_content = true;
    }
    if (auto* c = d.if_contains("refusal"); c && c->is_string()) {
      acc.refusal += sv(c->get_string());
      acc.has_refusal = true;
    }
    if (auto* tcs = d.if_contains("tool_calls"); tcs && tcs->is_array()) {
      for (const auto& tv : tcs->get_array()) {
        if (!tv.is_object()) continue;
        const auto& t = tv.get_object();
        int64_t ti = member_int(t, "index");
        auto it = std::find_if(acc.tool_calls.begin(), acc.tool_calls.end(),
                               [&](const auto& p) { return p.first == ti; });
        if (it == acc.tool_calls.end()) {
          acc.tool_calls.emplace_back(ti, tool_call_acc{});
          it = acc.tool_calls.end() - 1;
        }
        auto& tc = it->second;
        if (auto id = member_string(t, "id"); !id.empty()) tc.id = id;
        if (auto ty = member_string(t, "type"); !ty.empty()) tc.type = ty;
        if (auto* fv = t.if_contains("function"); fv && fv->is_object()) {
          const auto& fo = fv->get_object();
          if (auto n = member_string(fo, "name"); !n.empty()) tc.name += n;
          if (auto* a = fo.if_contains("arguments"); a && a->is_string()) tc.arguments += sv(a->get_string());
        }
      }
    }
  }
  return {};
}

response chunk_aggregator::finish() const {
  json::object out;
  out["id"] = id_;
  out["object"] = text_completion_ ? "text_completion" : "chat.completion";
  out["created"] = created_;
  out["model"] = model_;
  json::array choices;
  std::vector<const choice_acc*> sorted;
  for (const auto& c : choices_) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->index < b->index; });
  for (const auto* c : sorted) {
    json::object co;
    co["index"] = c->index;
    if (text_completion_) {
      co["text"] = c->content;
      co["logprobs"] = c->has_logprobs ? c->text_logprobs : json::value(nullptr);
    } else {
      json::object msg;
      msg["role"] = c->role.empty() ? "assistant" : c->role;
      if (c->has_content || c->tool_calls.empty()) {
        msg["content"] = c->content;
      } else {
        msg["content"] = nullptr;
      }
      msg["refusal"] = c->has_refusal ? json::value(c->refusal) : json::value(nullptr);
      if (!c->tool_calls.empty()) {
        auto tcs = c->tool_calls;
        std::sort(tcs.begin(), tcs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        json::array arr;
        for (const auto& [idx, tc] : tcs) {
          arr.push_back(json::object{{"id", tc.id},
                                     {"type", tc.type.empty() ? "function" : tc.type},
                                     {"function", json::object{{"name", tc.name}, {"arguments", tc.arguments}}}});
        }
        msg["tool_calls"] = std::move(arr);
      }
      co["message"] = std::move(msg);
      if (c->has_logprobs) {
        co["logprobs"] = json::object{{"content", c->logprobs_content}};
      } else {
        co["logprobs"] = nullptr;
      }
    }
    co["finish_reason"] = c->finish.empty() ? json::value(nullptr) : json::value(c->finish);
    choices.push_back(std::move(co));
  }
  out["choices"] = std::move(choices);
  if (usage_) out["usage"] = usage_json_;
  if (!fingerprint_.empty()) out["system_fingerprint"] = fingerprint_;

  response r;
  r.json = json::serialize(out);
  for (const auto* c : sorted) {
    if (c->index == 0) {
      r.content = c->content;
      r.finish = finish_reason_from_name(c->finish);
    }
  }
  r.usage = usage_;
  return r;
}

// ---- response -> chunks -------------------------------------------------------------------------

namespace {

// Largest prefix of s of at most n bytes that does not split a UTF-8 sequence (at least one
// whole code point).
size_t utf8_piece(std::string_view s, size_t n) {
  if (n == 0 || s.size() <= n) return s.size();
  size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  if (cut == 0) {
    cut = 1;
    while (cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) ++cut;
  }
  return cut;
}

}  // namespace

result<std::vector<chunk>> response_to_chunks(std::string_view response_json, bool include_usage,
                                              size_t max_piece_bytes) {
  auto parsed = detail::parse_json(response_json, "The response");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::corrupt_data, "the response is not a JSON object");
  const auto& o = parsed->get_object();
  chunk_meta m;
  m.id = member_string(o, "id");
  m.created = member_int(o, "created");
  m.model = member_string(o, "model");
  m.system_fingerprint = member_string(o, "system_fingerprint");
  bool text = member_string(o, "object") == "text_completion";
  std::vector<chunk> out;
  auto* ch = o.if_contains("choices");
  if (!ch || !ch->is_array()) return make_error(errc::corrupt_data, "the response has no 'choices' array");
  const json::object* c0 = nullptr;
  for (const auto& cv : ch->get_array()) {
    if (cv.is_object() && member_int(cv.get_object(), "index") == 0) c0 = &cv.get_object();
  }
  if (c0) {
    finish_reason f = finish_reason_from_name(member_string(*c0, "finish_reason"));
    if (text) {
      std::string_view t = member_string(*c0, "text");
      do {
        size_t n = utf8_piece(t, max_piece_bytes);
        out.push_back(make_completion_chunk(m, t.substr(0, n), finish_reason::none));
        t.remove_prefix(n);
      } while (!t.empty());
      out.push_back(make_completion_chunk(m, "", f));
    } else {
      const json::object* msg = nullptr;
      if (auto* mv = c0->if_contains("message"); mv && mv->is_object()) msg = &mv->get_object();
      std::string_view role = msg ? member_string(*msg, "role") : std::string_view{};
      chunk_delta first;
      first.role = role.empty() ? "assistant" : role;
      first.content = "";
      out.push_back(make_chat_chunk(m, first));
      if (msg) {
        std::string_view content = member_string(*msg, "content");
        while (!content.empty()) {
          size_t n = utf8_piece(content, max_piece_bytes);
          chunk_delta d;
          d.content = content.substr(0, n);
          out.push_back(make_chat_chunk(m, d));
          content.remove_prefix(n);
        }
        if (auto* tcs = msg->if_contains("tool_calls"); tcs && tcs->is_array()) {
          int idx = 0;
          for (const auto& tv : tcs->get_array()) {
            if (!tv.is_object()) continue;
            const auto& t = tv.get_object();
            tool_call_delta td;
            td.index = idx++;
            td.id = member_string(t, "id");
            if (auto* fv = t.if_contains("function"); fv && fv->is_object()) {
              td.name = member_string(fv->get_object(), "name");
              td.arguments = member_string(fv->get_object(), "arguments");
            }
            chunk_delta d;
            d.tool_calls = std::span<const tool_call_delta>(&td, 1);
            out.push_back(make_chat_chunk(m, d));
          }
        }
      }
      chunk_delta last;
      last.finish = f;
      out.push_back(make_chat_chunk(m, last));
    }
  }
  if (include_usage) {
    if (auto* u = o.if_contains("usage"); u && u->is_object()) {
      out.push_back(make_usage_chunk(m, usage_from_json(u->get_object()),
                                     text ? endpoint::completions : endpoint::chat_completions));
    }
  }
  return out;
}

// ---- complete responses -------------------------------------------------------------------------

std::string make_chat_response_json(const chunk_meta& m, std::string_view content,
                                    std::span<const tool_call> tool_calls, finish_reason f, const usage& u) {
  std::string out;
  out.reserve(300 + content.size());
  detail::append_chunk_head(out, m, "chat.completion");
  out += R"(,"choices":[{"index":0,"message":{"role":"assistant","content":)";
  if (tool_calls.empty() || !content.empty()) {
    append_json_string(out, content);
  } else {
    out += "null";
  }
  if (!tool_calls.empty()) {
    out += R"(,"tool_calls":[)";
    bool first = true;
    for (const auto& tc : tool_calls) {
      if (!first) out.push_back(',');
      first = false;
      out += R"({"id":)";
      append_json_string(out, tc.id);
      out += R"(,"type":"function","function":{"name":)";
      append_json_string(out, tc.name);
      out += R"(,"arguments":)";
      append_json_string(out, tc.arguments);
      out += "}}";
    }
    out.push_back(']');
  }
  out += R"(,"refusal":null},"logprobs":null,"finish_reason":)";
  if (f == finish_reason::none) {
    out += "null";
  } else {
    append_json_string(out, finish_reason_name(f));
  }
  out += R"(}],"usage":)";
  append_usage_json(out, u);
  out.push_back('}');
  return out;
}

std::string make_completion_response_json(const chunk_meta& m, std::string_view text, finish_reason f,
                                          const usage& u) {
  std::string out;
  out.reserve(260 + text.size());
  detail::append_chunk_head(out, m, "text_completion");
  out += R"(,"choices":[{"text":)";
  append_json_string(out, text);
  out += R"(,"index":0,"logprobs":null,"finish_reason":)";
  if (f == finish_reason::none) {
    out += "null";
  } else {
    append_json_string(out, finish_reason_name(f));
  }
  out += R"(}],"usage":)";
  append_usage_json(out, u);
  out.push_back('}');
  return out;
}

// parse_openai_response lives in chunks.cpp (the same on-demand parser as stream chunks).

}  // namespace fp::api
