// Cache keys: canonical request text + SHA-256, tenant namespaces, semantic scopes.
#include <boost/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "cache/cache.hpp"

namespace fp::cache {

namespace json = boost::json;

namespace {

constexpr const char* hexdig = "0123456789abcdef";

std::string to_hex(const uint8_t* p, size_t n) {
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(hexdig[p[i] >> 4]);
    s.push_back(hexdig[p[i] & 15]);
  }
  return s;
}

void sha256(std::string_view data, uint8_t out[32]) {
  unsigned int len = 32;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, data.data(), data.size());
  EVP_DigestFinal_ex(ctx, out, &len);
  EVP_MD_CTX_free(ctx);
}

void append_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hexdig[c >> 4]);
          out.push_back(hexdig[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void append_double(std::string& out, double d) {
  if (!std::isfinite(d)) {  // not valid JSON input, but be total
    out += "null";
    return;
  }
  if (d == 0) {  // -0 == 0
    out.push_back('0');
    return;
  }
  if (std::nearbyint(d) == d && std::fabs(d) < 9007199254740992.0) {
    out += std::to_string(static_cast<int64_t>(d));
    return;
  }
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, p);
}

void append_canonical(std::string& out, const json::value& v, int depth) {
  if (depth > 128) {
    out += "null";
    return;
  }
  switch (v.kind()) {
    case json::kind::null: out += "null"; break;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case json::kind::int64: out += std::to_string(v.get_int64()); break;
    case json::kind::uint64: out += std::to_string(v.get_uint64()); break;
    case json::kind::double_: append_double(out, v.get_double()); break;
    case json::kind::string: append_string(out, v.get_string()); break;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        append_canonical(out, e, depth + 1);
      }
      out.push_back(']');
      break;
    }
    case json::kind::object: {
      const auto& o = v.get_object();
      std::vector<const json::key_value_pair*> kv;
      kv.reserve(o.size());
      for (const auto& p : o) kv.push_back(&p);
      std::sort(kv.begin(), kv.end(), [](auto* a, auto* b) { return a->key() < b->key(); });
      out.push_back('{');
      bool first = true;
      for (auto* p : kv) {
        if (!first) out.push_back(',');
        first = false;
        append_string(out, p->key());
        out.push_back(':');
        append_canonical(out, p->value(), depth + 1);
      }
      out.push_back('}');
      break;
    }
  }
}

// Request fields that never change the answer.
bool ignored_field(std::string_view k) {
  return k == "stream" || k == "stream_options" || k == "user" || k == "metadata" || k == "store" ||
         k == "service_tier" || k == "model";
}

json::value normalise_content(const json::value& c) {
  // A content array of exactly one text part means the same as the plain string.
  if (c.is_array() && c.get_array().size() == 1) {
    const auto& part = c.get_array()[0];
    if (part.is_object()) {
      const auto& o = part.get_object();
      auto t = o.find("type");
      auto x = o.find("text");
      if (o.size() == 2 && t != o.end() && x != o.end() && t->value().is_string() &&
          t->value().get_string() == "text" && x->value().is_string())
        return x->value();
    }
  }
  return c;
}

json::object normalised(const api::request& req, std::string_view upstream_model, bool blank_last_user) {
  json::object o;
  for (const auto& p : req.body()) {
    std::string_view k = p.key();
    if (ignored_field(k)) continue;
    if (k == "max_completion_tokens") {
      o["max_tokens"] = p.value();
      continue;
    }
    if (k == "messages" && p.value().is_array()) {
      json::array msgs;
      const auto& in = p.value().get_array();
      for (size_t i = 0; i < in.size(); ++i) {
        const auto& m = in[i];
        if (!m.is_object()) {
          msgs.push_back(m);
          continue;
        }
        json::object mo = m.get_object();
        if (auto c = mo.find("content"); c != mo.end()) c->value() = normalise_content(c->value());
        if (blank_last_user && i + 1 == in.size()) mo["content"] = "\x01semantic\x01";
        msgs.push_back(std::move(mo));
      }
      o["messages"] = std::move(msgs);
      continue;
    }
    o[k] = p.value();
  }
  o["model"] = upstream_model.empty() ? json::string(req.model) : json::string(upstream_model);
  o["\x01endpoint"] = req.kind == api::endpoint::completions ? "completions" : "chat";
  return o;
}

key digest_of(std::string_view domain, std::string_view tenant, const std::string& canonical) {
  std::string buf;
  buf.reserve(domain.size() + tenant.size() + canonical.size() + 2);
  buf.append(domain).push_back('\n');
  buf.append(tenant).push_back('\n');
  buf.append(canonical);
  key k;
  sha256(buf, k.digest.data());
  return k;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  uint8_t d[32];
  sha256(data, d);
  return to_hex(d, 32);
}

std::string key::hex() const { return to_hex(digest.data(), digest.size()); }

std::string tenant_id(std::string_view api_key, std::string_view tenant_header_value) {
  if (!tenant_header_value.empty()) return "h:" + std::string(tenant_header_value);
  if (!api_key.empty()) return "k:" + sha256_hex(api_key).substr(0, 32);
  return "anon";
}

std::string canonical_json(const json::value& v) {
  std::string out;
  append_canonical(out, v, 0);
  return out;
}

std::string canonical_request(const api::request& req, std::string_view upstream_model) {
  return canonical_json(normalised(req, upstream_model, false));
}

key make_key(const api::request& req, std::string_view upstream_model, std::string_view tenant) {
  return digest_of("fastpath-cache-v1", tenant, canonical_request(req, upstream_model));
}

key semantic_scope(const api::request& req, std::string_view upstream_model, std::string_view tenant) {
  return digest_of("fastpath-semantic-v1", tenant, canonical_json(normalised(req, upstream_model, true)));
}

std::optional<std::string> final_user_text(const api::request& req) {
  if (req.kind == api::endpoint::completions) {
    const auto& body = req.body();
    auto p = body.find("prompt");
    if (p != body.end() && p->value().is_string()) return std::string(p->value().get_string());
    return std::nullopt;
  }
  const auto& body = req.body();
  auto m = body.find("messages");
  if (m == body.end() || !m->value().is_array() || m->value().get_array().empty()) return std::nullopt;
  const auto& last = m->value().get_array().back();
  if (!last.is_object()) return std::nullopt;
  const auto& o = last.get_object();
  auto role = o.find("role");
  if (role == o.end() || !role->value().is_string() || role->value().get_string() != "user") return std::nullopt;
  auto c = o.find("content");
  if (c == o.end()) return std::nullopt;
  if (c->value().is_string()) return std::string(c->value().get_string());
  if (c->value().is_array()) {
    std::string text;
    for (const auto& part : c->value().get_array()) {
      if (!part.is_object()) return std::nullopt;
      const auto& po = part.get_object();
      auto t = po.find("type");
      auto x = po.find("text");
      if (t == po.end() || !t->value().is_string() || t->value().get_string() != "text" || x == po.end() ||
          !x->value().is_string())
        return std::nullopt;  // images etc.: not a text question
      if (!text.empty()) text.push_back('\n');
      text.append(x->value().get_string());
    }
    return text;
  }
  return std::nullopt;
}

}  // namespace fp::cache
