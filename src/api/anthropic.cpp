// OpenAI <-> Anthropic Messages API translation (requests, SSE events, complete responses).
#include <fmt/format.h>

#include "api/api.hpp"
#include "api/json_util.hpp"

namespace fp::api {

namespace json = boost::json;
using detail::member_int;
using detail::member_string;
using detail::sv;

namespace {

error bad_request(std::string msg) { return make_error(errc::invalid_request, std::move(msg)); }

// An OpenAI content part -> an Anthropic content block.
result<json::value> translate_part(const json::value& p, std::string_view where) {
  if (p.is_string()) return json::value(json::object{{"type", "text"}, {"text", p}});
  if (!p.is_object()) return bad_request(fmt::format("'{}' content parts must be objects", where));
  const auto& o = p.get_object();
  auto type = member_string(o, "type");
  if (type == "text") return json::value(json::object{{"type", "text"}, {"text", member_string(o, "text")}});
  if (type == "image_url") {
    std::string_view url;
    if (auto* iu = o.if_contains("image_url")) {
      if (iu->is_object()) url = member_string(iu->get_object(), "url");
      if (iu->is_string()) url = sv(iu->get_string());
    }
    if (url.starts_with("data:")) {
      // data:<media type>;base64,<data>
      auto semi = url.find(';');
      auto comma = url.find(',');
      if (semi == std::string_view::npos || comma == std::string_view::npos || semi > comma) {
        return bad_request(fmt::format("'{}' has an image data URL that is not base64", where));
      }
      return json::value(json::object{
          {"type", "image"},
          {"source", json::object{{"type", "base64"},
                                  {"media_type", url.substr(5, semi - 5)},
                                  {"data", url.substr(comma + 1)}}}});
    }
    return json::value(
        json::object{{"type", "image"}, {"source", json::object{{"type", "url"}, {"url", url}}}});
  }
  return bad_request(fmt::format("'{}' has a content part of type '{}' that Anthropic does not support", where, type));
}

// Content (string / array of parts / null) -> array of blocks appended to out.
result<void> append_content(const json::value* c, json::array& out, std::string_view where) {
  if (!c || c->is_null()) return {};
  if (c->is_string()) {
    if (!c->get_string().empty()) out.push_back(json::object{{"type", "text"}, {"text", *c}});
    return {};
  }
  if (c->is_array()) {
    for (const auto& p : c->get_array()) {
      auto b = translate_part(p, where);
      if (!b) return b.error();
      out.push_back(std::move(*b));
    }
    return {};
  }
  return bad_request(fmt::format("'{}.content' must be a string or an array", where));
}

std::string text_of(const json::value* c) {
  std::string s;
  if (!c || c->is_null()) return s;
  if (c->is_string()) return std::string(sv(c->get_string()));
  if (c->is_array()) {
    for (const auto& p : c->get_array()) {
      if (p.is_object() && member_string(p.get_object(), "type") == "text") {
        if (!s.empty()) s += "\n";
        s += member_string(p.get_object(), "text");
      } else if (p.is_string()) {
        if (!s.empty()) s += "\n";
        s += sv(p.get_string());
      }
    }
  }
  return s;
}

}  // namespace

finish_reason anthropic_stop_reason(std::string_view s) noexcept {
  if (s == "end_turn" || s == "stop_sequence" || s == "pause_turn") return finish_reason::stop;
  if (s == "max_tokens") return finish_reason::length;
  if (s == "tool_use") return finish_reason::tool_calls;
  if (s == "refusal") return finish_reason::content_filter;
  return finish_reason::none;
}

result<std::string> anthropic_request_json(const request& req, std::string_view upstream_model) {
  const auto& in = req.body();
  json::object out;
  out["model"] = upstream_model.empty() ? std::string_view(req.model) : upstream_model;
  json::array system;
  json::array messages;

  auto push = [&](std::string_view role, json::array blocks) {
    if (blocks.empty()) return;
    if (!messages.empty()) {
      auto& last = messages.back().as_object();
      if (member_string(last, "role") == role) {
        auto& arr = last["content"].as_array();
        for (auto& b : blocks) arr.push_back(std::move(b));
        return;
      }
    }
    messages.push_back(json::object{{"role", role}, {"content", std::move(blocks)}});
  };

  const auto* msgs = in.if_contains("messages");
  if (!msgs || !msgs->is_array()) return bad_request("Missing required parameter: 'messages'.");
  size_t i = 0;
  for (const auto& mv : msgs->get_array()) {
    std::string where = fmt::format("messages[{}]", i++);
    if (!mv.is_object()) return bad_request(fmt::format("'{}' must be an object", where));
    const auto& m = mv.get_object();
    auto role = member_string(m, "role");
    const auto* content = m.if_contains("content");
    if (role == "system" || role == "developer") {
      auto t = text_of(content);
      if (!t.empty()) system.push_back(json::object{{"type", "text"}, {"text", t}});
    } else if (role == "user") {
      json::array blocks;
      if (auto r = append_content(content, blocks, where); !r) return r.error();
      push("user", std::move(blocks));
    } else if (role == "assistant") {
      json::array blocks;
      if (auto r = append_content(content, blocks, where); !r) return r.error();
      if (auto* tcs = m.if_contains("tool_calls"); tcs && tcs->is_array()) {
        for (const auto& tv : tcs->get_array()) {
          if (!tv.is_object()) return bad_request(fmt::format("'{}.tool_calls' entries must be objects", where));
          const auto& t = tv.get_object();
          const json::object* fn = nullptr;
          if (auto* f = t.if_contains("function"); f && f->is_object()) fn = &f->get_object();
          if (!fn) return bad_request(fmt::format("'{}.tool_calls' entry has no 'function'", where));
          json::value input = json::object{};
          auto args = member_string(*fn, "arguments");
          if (!args.empty()) {
            boost::system::error_code ec;
            input = json::parse(args, ec);
            if (ec || !input.is_object()) {
              return bad_request(fmt::format("'{}.tool_calls' arguments are not a JSON object", where));
            }
          }
          blocks.push_back(json::object{{"type", "tool_use"},
                                        {"id", member_string(t, "id")},
                                        {"name", member_string(*fn, "name")},
                                        {"input", std::move(input)}});
        }
      }
      push("assistant", std::move(blocks));
    } else if (role == "tool" || role == "function") {
      json::array inner;
      if (content && content->is_array()) {
        if (auto r = append_content(content, inner, where); !r) return r.error();
      }
      json::object block{{"type", "tool_result"},
                         {"tool_use_id", role == "tool" ? member_string(m, "tool_call_id") : member_string(m, "name")}};
      if (content && content->is_array()) {
        block["content"] = std::move(inner);
      } else {
        block["content"] = text_of(content);
      }
      json::array blocks;
      blocks.push_back(std::move(block));
      push("user", std::move(blocks));
    } else {
      return bad_request(fmt::format("'{}.role' '{}' is not supported by Anthropic", where, role));
    }
  }
  if (system.size() == 1) {
    out["system"] = system[0].as_object()["text"];
  } else if (!system.empty()) {
    out["system"] = std::move(system);
  }
  out["messages"] = std::move(messages);
  out["max_tokens"] = req.max_tokens ? *req.max_tokens : anthropic_default_max_tokens;

  if (auto* stop = in.if_contains("stop"); stop && !stop->is_null()) {
    json::array seqs;
    if (stop->is_string()) {
      seqs.push_back(*stop);
    } else if (stop->is_array()) {
      seqs = stop->get_array();
    }
    if (!seqs.empty()) out["stop_sequences"] = std::move(seqs);
  }
  // Anthropic's temperature range is 0..1 (OpenAI's is 0..2): clamp.
  if (req.temperature) out["temperature"] = std::min(*req.temperature, 1.0);
  if (auto* tp = in.if_contains("top_p"); tp && tp->is_number()) out["top_p"] = *tp;
  if (auto* tk = in.if_contains("top_k"); tk && tk->is_number()) out["top_k"] = *tk;
  if (req.stream) out["stream"] = true;
  if (auto u = member_string(in, "user"); !u.empty()) out["metadata"] = json::object{{"user_id", u}};
  // Test hook: the "mock" object (fastpath mock's per-request knobs) travels along untouched.
  if (auto* mk = in.if_contains("mock"); mk && mk->is_object()) out["mock"] = *mk;

  bool tools_off = false;
  if (auto* tools = in.if_contains("tools"); tools && tools->is_array() && !tools->get_array().empty()) {
    json::array at;
    for (const auto& tv : tools->get_array()) {
      if (!tv.is_object()) return bad_request("'tools' entries must be objects");
      const auto& t = tv.get_object();
      const json::object* fn = nullptr;
      if (auto* f = t.if_contains("function"); f && f->is_object()) fn = &f->get_object();
      if (!fn) return bad_request("'tools' entries must have a 'function' object");
      json::object tool{{"name", member_string(*fn, "name")}};
      if (auto d = member_string(*fn, "description"); !d.empty()) tool["description"] = d;
      if (auto* p = fn->if_contains("parameters"); p && p->is_object()) {
        tool["input_schema"] = *p;
      } else {
        tool["input_schema"] = json::object{{"type", "object"}, {"properties", json::object{}}};
      }
      at.push_back(std::move(tool));
    }
    json::object choice;
    if (auto* tc = in.if_contains("tool_choice"); tc && !tc->is_null()) {
      if (tc->is_string()) {
        auto s = sv(tc->get_string());
        if (s == "auto") choice["type"] = "auto";
        else if (s == "required") choice["type"] = "any";
        else if (s == "none") tools_off = true;
        else return bad_request(fmt::format("Invalid value for 'tool_choice': '{}'", s));
      } else if (tc->is_object()) {
        std::string_view name;
        if (auto* f = tc->get_object().if_contains("function"); f && f->is_object()) {
          name = member_string(f->get_object(), "name");
        }
        if (name.empty()) return bad_request("'tool_choice' object must name a function");
        choice["type"] = "tool";
        choice["name"] = name;
      }
    }
    if (auto* ptc = in.if_contains("parallel_tool_calls"); ptc && ptc->is_bool() && !ptc->get_bool() && !tools_off) {
      if (choice.empty()) choice["type"] = "auto";
      choice["disable_parallel_tool_use"] = true;
    }
    if (!tools_off) {
      out["tools"] = std::move(at);
      if (!choice.empty()) out["tool_choice"] = std::move(choice);
    }
  }
  return json::serialize(out);
}

// ---- streaming ----------------------------------------------------------------------------------

anthropic_stream_translator::anthropic_stream_translator(std::string model, bool include_usage,
                                                         int64_t created_unix_s)
    : include_usage_(include_usage) {
  meta_.model = std::move(model);
  meta_.created = created_unix_s;
  meta_.id = "chatcmpl-anthropic";
}

result<void> anthropic_stream_translator::on_event(std::string_view event, std::string_view data,
                                                   std::vector<chunk>& out) {
  if (done_) return {};
  if (event == "ping") return {};
  auto parsed = detail::parse_json(data, "An Anthropic stream event");
  if (!parsed) return make_error(errc::upstream_error, parsed.error().message, 502);
  if (!parsed->is_object()) return make_error(errc::upstream_error, "an Anthropic stream event is not an object", 502);
  const auto& o = parsed->get_object();
  std::string_view type = member_string(o, "type");
  if (type.empty()) type = event;

  if (type == "message_start") {
    if (auto* mv = o.if_contains("message"); mv && mv->is_object()) {
      const auto& m = mv->get_object();
      if (auto id = member_string(m, "id"); !id.empty()) meta_.id = fmt::format("chatcmpl-{}", id);
      if (auto* u = m.if_contains("usage"); u && u->is_object()) {
        const auto& uo = u->get_object();
        usage_.cached_prompt_tokens = member_int(uo, "cache_read_input_tokens");
        usage_.prompt_tokens = member_int(uo, "input_tokens") + usage_.cached_prompt_tokens +
                               member_int(uo, "cache_creation_input_tokens");
        usage_.completion_tokens = member_int(uo, "output_tokens");
      }
    }
    if (!started_) {
      started_ = true;
      chunk_delta d;
      d.role = "assistant";
      d.content = "";
      out.push_back(make_chat_chunk(meta_, d));
    }
    return {};
  }
  if (type == "content_block_start") {
    block_index_ = member_int(o, "index");
    block_is_tool_ = false;
    const auto* cb = o.if_contains("content_block");
    if (!cb || !cb->is_object()) return {};
    const auto& b = cb->get_object();
    auto bt = member_string(b, "type");
    if (bt == "tool_use" || bt == "server_tool_use") {
      block_is_tool_ = true;
      ++tool_index_;
      tool_id_ = member_string(b, "id");
      tool_name_ = member_string(b, "name");
      tool_call_delta td{tool_index_, tool_id_, tool_name_, ""};
      chunk_delta d;
      d.tool_calls = std::span<const tool_call_delta>(&td, 1);
      out.push_back(make_chat_chunk(meta_, d));
    } else if (bt == "text") {
      auto t = member_string(b, "text");
      if (!t.empty()) {
        chunk_delta d;
        d.content = t;
        out.push_back(make_chat_chunk(meta_, d));
      }
    }
    return {};
  }
  if (type == "content_block_delta") {
    const auto* dv = o.if_contains("delta");
    if (!dv || !dv->is_object()) return {};
    const auto& d = dv->get_object();
    auto dt = member_string(d, "type");
    if (dt == "text_delta") {
      chunk_delta cd;
      cd.content = member_string(d, "text");
      out.push_back(make_chat_chunk(meta_, cd));
    } else if (dt == "input_json_delta" && block_is_tool_) {
      auto pj = member_string(d, "partial_json");
      if (pj.empty()) return {};
      tool_call_delta td{tool_index_, {}, {}, pj};
      chunk_delta cd;
      cd.tool_calls = std::span<const tool_call_delta>(&td, 1);
      out.push_back(make_chat_chunk(meta_, cd));
    }
    // thinking_delta / signature_delta / citations_delta: not part of the OpenAI shape.
    return {};
  }
  if (type == "content_block_stop") {
    block_is_tool_ = false;
    return {};
  }
  if (type == "message_delta") {
    if (auto* dv = o.if_contains("delta"); dv && dv->is_object()) {
      if (auto sr = member_string(dv->get_object(), "stop_reason"); !sr.empty()) {
        finish_ = anthropic_stop_reason(sr);
        if (finish_ == finish_reason::none) finish_ = finish_reason::stop;
      }
    }
    if (auto* u = o.if_contains("usage"); u && u->is_object()) {
      const auto& uo = u->get_object();
      if (uo.contains("output_tokens")) usage_.completion_tokens = member_int(uo, "output_tokens");
      if (uo.contains("input_tokens") && member_int(uo, "input_tokens") > 0) {
        usage_.cached_prompt_tokens = member_int(uo, "cache_read_input_tokens", usage_.cached_prompt_tokens);
        usage_.prompt_tokens = member_int(uo, "input_tokens") + usage_.cached_prompt_tokens +
                               member_int(uo, "cache_creation_input_tokens");
      }
    }
    if (finish_ != finish_reason::none) {
      chunk_delta cd;
      cd.finish = finish_;
      out.push_back(make_chat_chunk(meta_, cd));
    }
    return {};
  }
  if (type == "message_stop") {
    if (finish_ == finish_reason::none) {
      finish_ = finish_reason::stop;
      chunk_delta cd;
      cd.finish = finish_;
      out.push_back(make_chat_chunk(meta_, cd));
    }
    if (include_usage_) out.push_back(make_usage_chunk(meta_, usage_));
    done_ = true;
    return {};
  }
  if (type == "error") {
    std::string msg = "Anthropic stream error";
    errc code = errc::upstream_error;
    int status = 502;
    if (auto* ev = o.if_contains("error"); ev && ev->is_object()) {
      const auto& eo = ev->get_object();
      if (auto m = member_string(eo, "message"); !m.empty()) msg = m;
      auto et = member_string(eo, "type");
      if (et == "overloaded_error") {
        code = errc::rate_limited;
        status = 529;
      } else if (et == "rate_limit_error") {
        code = errc::rate_limited;
        status = 429;
      } else if (et == "api_error") {
        status = 500;
      }
    }
    return make_error(code, std::move(msg), status);
  }
  return {};  // unknown events are ignored, as Anthropic asks clients to do
}

result<response> anthropic_response_to_openai(std::string_view body, std::string_view model,
                                              int64_t created_unix_s) {
  auto parsed = detail::parse_json(body, "The Anthropic response");
  if (!parsed) return make_error(errc::upstream_error, parsed.error().message, 502);
  if (!parsed->is_object()) return make_error(errc::upstream_error, "the Anthropic response is not an object", 502);
  const auto& o = parsed->get_object();
  if (member_string(o, "type") == "error") return upstream_error_from_body(502, body, wire_format::anthropic);
  chunk_meta m;
  m.id = fmt::format("chatcmpl-{}", member_string(o, "id"));
  m.created = created_unix_s;
  m.model = model.empty() ? std::string(member_string(o, "model")) : std::string(model);
  std::string text;
  std::vector<tool_call> calls;
  if (auto* cv = o.if_contains("content"); cv && cv->is_array()) {
    for (const auto& bv : cv->get_array()) {
      if (!bv.is_object()) continue;
      const auto& b = bv.get_object();
      auto t = member_string(b, "type");
      if (t == "text") {
        text += member_string(b, "text");
      } else if (t == "tool_use") {
        tool_call tc;
        tc.id = member_string(b, "id");
        tc.name = member_string(b, "name");
        if (auto* in = b.if_contains("input")) tc.arguments = json::serialize(*in);
        calls.push_back(std::move(tc));
      }
    }
  }
  usage u;
  if (auto* uv = o.if_contains("usage"); uv && uv->is_object()) {
    const auto& uo = uv->get_object();
    u.cached_prompt_tokens = member_int(uo, "cache_read_input_tokens");
    u.prompt_tokens = member_int(uo, "input_tokens") + u.cached_prompt_tokens +
                      member_int(uo, "cache_creation_input_tokens");
    u.completion_tokens = member_int(uo, "output_tokens");
  }
  finish_reason f = anthropic_stop_reason(member_string(o, "stop_reason"));
  if (f == finish_reason::none) f = finish_reason::stop;
  response r;
  r.json = make_chat_response_json(m, text, calls, f, u);
  r.content = std::move(text);
  r.finish = f;
  r.usage = u;
  return r;
}

}  // namespace fp::api
