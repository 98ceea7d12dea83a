// Private helpers of fp_api: small JSON writing and reading utilities.
#pragma once

#include <boost/json.hpp>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "api/api.hpp"

namespace fp::api::detail {

inline void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

inline std::string_view sv(const boost::json::string& s) noexcept { return {s.data(), s.size()}; }
inline std::string_view sv_key(boost::json::string_view k) noexcept { return {k.data(), k.size()}; }

// The JSON type name OpenAI uses in its "expected X, but got Y" messages.
std::string_view json_kind_name(const boost::json::value& v) noexcept;

// Integer value of a JSON number when it is integral (1, 1.0); nullopt otherwise.
std::optional<int64_t> as_integer(const boost::json::value& v) noexcept;
// Numeric value of a JSON number; nullopt otherwise.
std::optional<double> as_number(const boost::json::value& v) noexcept;

// Object member lookup returning nullptr when absent.
inline const boost::json::value* member(const boost::json::object& o, std::string_view k) noexcept {
  return o.if_contains(k);
}
inline std::string_view member_string(const boost::json::object& o, std::string_view k) noexcept {
  auto* v = o.if_contains(k);
  if (v && v->is_string()) return sv(v->get_string());
  return {};
}
inline int64_t member_int(const boost::json::object& o, std::string_view k, int64_t dflt = 0) noexcept {
  auto* v = o.if_contains(k);
  if (!v) return dflt;
  auto i = as_integer(*v);
  return i ? *i : dflt;
}

// Parses JSON with a message that names the offset and line:col on failure.
// The value is allocated from `sp` (default: the default resource).
result<boost::json::value> parse_json(std::string_view text, std::string_view what,
                                      boost::json::storage_ptr sp = {});

// "line L, column C" for a byte offset.
std::string describe_position(std::string_view text, size_t offset);

void append_chunk_head(std::string& out, const chunk_meta& m, std::string_view object);

}  // namespace fp::api::detail
