// Prompt-token count of an OpenAI chat/completions request, as OpenAI bills it.
//
// Messages (exact for text, per OpenAI's cookbook "How to count tokens with tiktoken", which
// matches the billed prompt_tokens of gpt-3.5-turbo-0613 and later, gpt-4, gpt-4o, o-series):
//   3 tokens per message + the tokens of every string field (role, content, name, ...)
//   + 1 per `name` + 3 for the reply primer <|start|>assistant<|message|>.
// Estimates (chat_token_count::exact = false): tool/function definitions (the cookbook's
// per-function / per-property constants), images (85 tokens at detail "low", else 765 = a
// 1024x1024 image at "high": the real size is not known here), audio/file parts (0),
// assistant tool_calls (name + arguments + 3), response_format schemas (their JSON text).
#include <boost/json.hpp>

#include "tokenizer/tokenizer.hpp"

namespace fp::tokenizer {
namespace {

struct tool_consts {
  int func_init, prop_init, prop_key, enum_init, enum_item, func_end;
};

std::string_view str_or_empty(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return (v && v->is_string()) ? std::string_view(v->as_string()) : std::string_view();
}

std::string_view strip_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

int64_t count_function(const boost::json::object& fn, const tiktoken_encoding& enc, const tool_consts& k) {
  int64_t n = k.func_init;
  std::string line(str_or_empty(fn, "name"));
  line += ':';
  line += strip_dot(str_or_empty(fn, "description"));
  n += static_cast<int64_t>(enc.count(line));
  const auto* params = fn.if_contains("parameters");
  if (!params || !params->is_object()) return n;
  const auto* props = params->as_object().if_contains("properties");
  if (!props || !props->is_object() || props->as_object().empty()) return n;
  n += k.prop_init;
  for (const auto& [key, val] : props->as_object()) {
    n += k.prop_key;
    if (!val.is_object()) continue;
    const auto& p = val.as_object();
    std::string type;
    if (const auto* t = p.if_contains("type")) {
      type = t->is_string() ? std::string(t->as_string()) : boost::json::serialize(*t);
    }
    if (const auto* en = p.if_contains("enum"); en && en->is_array()) {
      n += k.enum_init;
      for (const auto& item : en->as_array()) {
        n += k.enum_item;
        n += static_cast<int64_t>(enc.count(item.is_string() ? std::string(item.as_string())
                                                               : boost::json::serialize(item)));
      }
    }
    std::string l(key);
    l += ':';
    l += type;
    l += ':';
    l += strip_dot(str_or_empty(p, "description"));
    n += static_cast<int64_t>(enc.count(l));
  }
  return n;
}

int64_t count_content_parts(const boost::json::array& parts, const tiktoken_encoding& enc, bool& exact) {
  int64_t n = 0;
  for (const auto& part : parts) {
    if (part.is_string()) {
      n += static_cast<int64_t>(enc.count(part.as_string()));
      continue;
    }
    if (!part.is_object()) continue;
    const auto& o = part.as_object();
    const std::string_view type = str_or_empty(o, "type");
    if (type == "text" || type == "input_text") {
      n += static_cast<int64_t>(enc.count(str_or_empty(o, "text")));
    } else if (type == "image_url") {
      exact = false;
      std::string_view detail;
      if (const auto* iu = o.if_contains("image_url"); iu && iu->is_object()) {
        detail = str_or_empty(iu->as_object(), "detail");
      }
      n += detail == "low" ? 85 : 765;
    } else {
      exact = false;  // input_audio, file, refusal, ...: not counted
      if (type == "refusal") n += static_cast<int64_t>(enc.count(str_or_empty(o, "refusal")));
    }
  }
  return n;
}

}  // namespace

chat_token_count count_chat_request(const boost::json::object& body, const tiktoken_encoding& enc) {
  chat_token_count r;
  r.encoding = std::string(enc.name());
  int64_t n = 0;
  if (const auto* msgs = body.if_contains("messages"); msgs && msgs->is_array()) {
    for (const auto& m : msgs->as_array()) {
      if (!m.is_object()) continue;
      n += 3;
      for (const auto& [key, val] : m.as_object()) {
        if (val.is_string()) {
          n += static_cast<int64_t>(enc.count(val.as_string()));
          if (key == "name") n += 1;
        } else if (val.is_array() && key == "content") {
          n += count_content_parts(val.as_array(), enc, r.exact);
        } else if (val.is_array() && key == "tool_calls") {
          r.exact = false;
          for (const auto& tc : val.as_array()) {
            if (!tc.is_object()) continue;
            const auto* fn = tc.as_object().if_contains("function");
            if (!fn || !fn->is_object()) continue;
            n += 3 + static_cast<int64_t>(enc.count(str_or_empty(fn->as_object(), "name"))) +
                 static_cast<int64_t>(enc.count(str_or_empty(fn->as_object(), "arguments")));
          }
        } else if (val.is_object() && key == "function_call") {
          r.exact = false;
          n += 3 + static_cast<int64_t>(enc.count(str_or_empty(val.as_object(), "name"))) +
               static_cast<int64_t>(enc.count(str_or_empty(val.as_object(), "arguments")));
        }
      }
    }
  }
  n += 3;  // <|start|>assistant<|message|>
  const bool o200k = enc.name() == "o200k_base";
  const tool_consts k = o200k ? tool_consts{7, 3, 3, -3, 3, 12} : tool_consts{10, 3, 3, -3, 3, 12};
  int64_t tools = 0;
  bool any_tool = false;
  if (const auto* ts = body.if_contains("tools"); ts && ts->is_array()) {
    for (const auto& t : ts->as_array()) {
      if (!t.is_object()) continue;
      const auto* fn = t.as_object().if_contains("function");
      if (fn && fn->is_object()) {
        tools += count_function(fn->as_object(), enc, k);
        any_tool = true;
      }
    }
  }
  if (const auto* fs = body.if_contains("functions"); fs && fs->is_array()) {
    for (const auto& f : fs->as_array()) {
      if (f.is_object()) {
        tools += count_function(f.as_object(), enc, k);
        any_tool = true;
      }
    }
  }
  if (any_tool) {
    n += tools + k.func_end;
    r.exact = false;
  }
  if (const auto* rf = body.if_contains("response_format"); rf && rf->is_object()) {
    if (const auto* js = rf->as_object().if_contains("json_schema")) {
      n += static_cast<int64_t>(enc.count(boost::json::serialize(*js)));
      r.exact = false;
    }
  }
  r.prompt_tokens = n;
  return r;
}

result<chat_token_count> count_chat_request(const boost::json::object& body) {
  const auto* msgs = body.if_contains("messages");
  if (!msgs || !msgs->is_array()) {
    return make_error(errc::invalid_request, "request has no 'messages' array");
  }
  const std::string_view model = str_or_empty(body, "model");
  auto name = encoding_name_for_model(model);
  const bool known = name.has_value();
  auto enc = get_encoding(known ? *name : std::string_view("o200k_base"));
  if (!enc) return enc.error();
  auto r = count_chat_request(body, **enc);
  if (!known) r.exact = false;
  return r;
}

}  // namespace fp::tokenizer
