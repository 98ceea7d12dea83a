// UTF-8 helpers and the small maps of the generated Unicode tables.
#include "tokenizer/unicode.hpp"

#include <simdjson.h>

#include <algorithm>

namespace fp::tokenizer::unicode {
namespace {

uint32_t lookup_pair(const uint32_t (*table)[2], size_t n, uint32_t cp) noexcept {
  const auto* end = table + n;
  const auto* it = std::lower_bound(table, end, cp,
                                    [](const uint32_t(&e)[2], uint32_t v) { return e[0] < v; });
  return (it != end && (*it)[0] == cp) ? (*it)[1] : cp;
}

}  // namespace

uint32_t to_lower(uint32_t cp) noexcept {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return lookup_pair(k_lower, k_lower_size, cp);
}

uint32_t nfd_first(uint32_t cp) noexcept {
  if (cp < 0xC0) return cp;
  return lookup_pair(k_nfd_first, k_nfd_first_size, cp);
}

bool is_valid_utf8(std::string_view s) noexcept {
  // simdjson picks the widest SIMD implementation the CPU has at run time.
  return simdjson::validate_utf8(s.data(), s.size());
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    size_t len;
    const uint32_t cp = decode_utf8(p, s.size(), i, len);
    if (cp == replacement_char && !(len == 3 && p[i] == 0xEF && p[i + 1] == 0xBF && p[i + 2] == 0xBD)) {
      append_utf8(out, replacement_char);
    } else {
      out.append(s.data() + i, len);
    }
    i += len;
  }
  return out;
}

}  // namespace fp::tokenizer::unicode
