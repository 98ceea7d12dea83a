// Error objects in the OpenAI shape, and upstream error bodies (OpenAI / Anthropic) -> fp::error.
#include <fmt/format.h>

#include "api/api.hpp"
#include "api/json_util.hpp"

namespace fp::api {

std::string_view openai_error_type(errc c) noexcept {
  switch (c) {
    case errc::invalid_request:
    case errc::not_found:
    case errc::too_large:
    case errc::unsupported: return "invalid_request_error";
    case errc::unauthorized: return "authentication_error";
    case errc::rate_limited: return "rate_limit_error";
    case errc::upstream_error:
    case errc::upstream_unreachable:
    case errc::upstream_timeout: return "upstream_error";
    case errc::cancelled: return "cancelled";
    default: return "server_error";
  }
}

namespace {
std::string_view openai_error_code(errc c) noexcept {
  switch (c) {
    case errc::not_found: return "model_not_found";
    case errc::unauthorized: return "invalid_api_key";
    case errc::rate_limited: return "rate_limit_exceeded";
    case errc::too_large: return "request_too_large";
    case errc::upstream_timeout: return "upstream_timeout";
    case errc::upstream_unreachable: return "upstream_unreachable";
    default: return {};
  }
}
}  // namespace

std::string openai_error_json(const error& e) {
  std::string out;
  out.reserve(e.message.size() + 96);
  out += R"({"error":{"message":)";
  append_json_string(out, e.message);
  out += R"(,"type":)";
  append_json_string(out, openai_error_type(e.code));
  out += R"(,"param":null,"code":)";
  auto code = openai_error_code(e.code);
  if (code.empty()) {
    out += "null";
  } else {
    append_json_string(out, code);
  }
  out += "}}";
  return out;
}

error upstream_error_from_body(int http_status, std::string_view body, wire_format f) {
  errc code = http_status == 429 || http_status == 529 ? errc::rate_limited : errc::upstream_error;
  std::string msg;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto* err = v.get_object().if_contains("error");
    if (err && err->is_object()) {
      msg = std::string(detail::member_string(err->get_object(), "message"));
      if (f == wire_format::anthropic) {
        auto t = detail::member_string(err->get_object(), "type");
        if (t == "overloaded_error" || t == "rate_limit_error") code = errc::rate_limited;
      }
    } else if (err && err->is_string()) {
      msg = std::string(detail::sv(err->get_string()));
    }
  }
  if (msg.empty()) {
    msg = fmt::format("upstream returned HTTP {}", http_status);
  }
  return make_error(code, std::move(msg), http_status);
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the current run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

}  // namespace fp::api
