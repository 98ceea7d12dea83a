// Private to src/api: the generic parts of the strict single-pass JSON scanners (the stream chunk
// and complete-response scanner in chunks.cpp, the request-body scanner in request.cpp).
//
// A scanner validates strictly (RFC 8259 grammar, UTF-8 of strings, escapes incl. surrogate
// pairs) and is deliberately narrower than the reference parsers it sits in front of: it takes
// only what it checks completely and declines (returns false) on everything else, so the callers
// fall back to their reference and keep its results and error messages by construction.
// Declining is always allowed; accepting something the reference rejects is the one bug.
#pragma once

#include <simdjson.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace fp::api::scan {

constexpr uint64_t k_ones = 0x0101010101010101ull;
constexpr uint64_t k_highs = 0x8080808080808080ull;

// Bytes of w that are '"', '\\' or < 0x20 (the high bit of each such byte; the lowest one is exact,
// which is all that is used).
inline uint64_t string_stops(uint64_t w) noexcept {
  auto zero = [](uint64_t v) { return (v - k_ones) & ~v & k_highs; };
  return zero(w ^ (k_ones * '"')) | zero(w ^ (k_ones * '\\')) | ((w - k_ones * 0x20) & ~w & k_highs);
}

inline bool is_hex(char ch) noexcept {
  return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}
inline uint32_t hex_value(char ch) noexcept {
  return ch <= '9' ? static_cast<uint32_t>(ch - '0') : static_cast<uint32_t>((ch | 0x20) - 'a' + 10);
}
inline uint32_t hex4(const char* p) noexcept {
  return (hex_value(p[0]) << 12) | (hex_value(p[1]) << 8) | (hex_value(p[2]) << 4) | hex_value(p[3]);
}
inline bool is_digit(char ch) noexcept { return ch >= '0' && ch <= '9'; }

// k == lit, with the length known at compile time (an inlined compare, not a memcmp call).
template <size_t N>
inline bool key_is(std::string_view k, const char (&lit)[N]) noexcept {
  return k.size() == N - 1 && __builtin_memcmp(k.data(), lit, N - 1) == 0;
}

inline void append_utf8(std::string& out, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = static_cast<char>(cp);
    n = 1;
  } else if (cp < 0x800) {
    b[0] = static_cast<char>(0xC0 | (cp >> 6));
    b[1] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = static_cast<char>(0xE0 | (cp >> 12));
    b[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    b[2] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = static_cast<char>(0xF0 | (cp >> 18));
    b[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    b[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    b[3] = static_cast<char>(0x80 | (cp & 0x3F));
    n = 4;
  }
  out.append(b, n);
}

// Appends the unescaped text of a string body whose escapes scan_string() checked. False for an
// unpaired surrogate (left to the reference).
inline bool append_unescaped(std::string& out, std::string_view raw) {
  const char* p = raw.data();
  const char* end = p + raw.size();
  while (p < end) {
    const char* bs = static_cast<const char*>(std::memchr(p, '\\', static_cast<size_t>(end - p)));
    if (!bs) {
      out.append(p, end);
      return true;
    }
    out.append(p, bs);
    char e = bs[1];
    p = bs + 2;
    switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      default: {  // 'u' (scan_string() let nothing else through)
        uint32_t cp = hex4(p);
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
          uint32_t lo = hex4(p + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        append_utf8(out, cp);
      }
    }
  }
  return true;
}

// The scanning primitives; a scanner for one document shape derives from this and adds the
// walk that extracts its fields.
class json_scanner {
 public:
  json_scanner(std::string_view text, int max_depth) noexcept
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()), max_depth_(max_depth) {}

 protected:
  const char* begin_;
  const char* p_;
  const char* end_;
  int max_depth_;           // fields()/elements() decline deeper nesting
  uint64_t non_ascii_ = 0;  // OR of string bytes seen (only its high bits are used)
  bool escaped_ = false;    // the last scan_string() saw an escape

  // At the end of a value that spans the whole text from `from` on: only whitespace is left and
  // the strings seen are valid UTF-8 (checked once, over the text from `from`: bytes >= 0x80 can
  // only be in strings, anything else was declined by the grammar).
  bool at_end_utf8_ok(size_t from = 0) noexcept {
    ws();
    if (p_ != end_) return false;
    if ((non_ascii_ & k_highs) != 0 && !simdjson::validate_utf8(begin_ + from, static_cast<size_t>(end_ - begin_) - from))
      return false;
    return true;
  }

  [[gnu::always_inline]] bool at(char ch) const noexcept { return p_ < end_ && *p_ == ch; }

  // Whitespace: compact JSON has none, so one compare decides the common case inline.
  [[gnu::always_inline]] void ws() noexcept {
    if (p_ < end_ && static_cast<unsigned char>(*p_) <= ' ') ws_slow();
  }
  void ws_slow() noexcept {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  [[gnu::always_inline]] bool literal(std::string_view lit) noexcept {
    if (static_cast<size_t>(end_ - p_) < lit.size() || std::memcmp(p_, lit.data(), lit.size()) != 0) return false;
    p_ += lit.size();
    return true;
  }

  // At '"': the raw body (between the quotes); escaped_ says whether it has escapes. Checks the
  // escapes and rejects control characters.
  [[gnu::always_inline]] bool scan_string(std::string_view& raw) noexcept {
    const char* s = p_ + 1;
    const char* p = s;
    uint64_t seen = 0;
    escaped_ = false;
    for (;;) {
      while (std::endian::native == std::endian::little && end_ - p >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        if (uint64_t m = string_stops(w)) {
          seen |= w;  // bytes past the stop too: at worst a needless UTF-8 check
          p += std::countr_zero(m) / 8;
          goto stop;
        }
        seen |= w;
        p += 8;
      }
      while (p < end_ && *p != '"' && *p != '\\' && static_cast<unsigned char>(*p) >= 0x20) {
        seen |= static_cast<unsigned char>(*p);
        ++p;
      }
      if (p == end_) return false;
    stop:
      if (*p == '"') {
        raw = std::string_view(s, static_cast<size_t>(p - s));
        p_ = p + 1;
        non_ascii_ |= seen;
        return true;
      }
      if (!scan_escape(p)) return false;
    }
  }

  // At '\\': past a valid escape; false for anything else (a control character, a cut escape, a
  // \u surrogate that is not a high one followed by an escaped low one: the references differ on
  // those, so none is taken).
  bool scan_escape(const char*& p) noexcept {
    if (*p != '\\' || end_ - p < 2) return false;
    escaped_ = true;
    switch (p[1]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        p += 2;
        return true;
      case 'u':
        if (end_ - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5])) return false;
        if (uint32_t cp = hex4(p + 2); cp >= 0xD800 && cp <= 0xDFFF) {
          if (cp >= 0xDC00 || end_ - p < 12 || p[6] != '\\' || p[7] != 'u' || !is_hex(p[8]) || !is_hex(p[9]) ||
              !is_hex(p[10]) || !is_hex(p[11]))
            return false;
          if (uint32_t lo = hex4(p + 8); lo < 0xDC00 || lo > 0xDFFF) return false;
          p += 12;
          return true;
        }
        p += 6;
        return true;
      default: return false;
    }
  }

  // An integer token: an optional '-' (when negative_ok) and at most 18 digits (it fits int64
  // exactly), not followed by a fraction or an exponent, not -0 (those are left to the reference).
  bool integer(int64_t& out, bool negative_ok = true) noexcept {
    const char* p = p_;
    const bool neg = negative_ok && p < end_ && *p == '-';
    if (neg) ++p;
    const char* d = p;
    int64_t v = 0;
    if (p < end_ && *p == '0') {
      ++p;
    } else {
      while (p < end_ && is_digit(*p) && p - d < 18) v = v * 10 + (*p++ - '0');
      if (p == d) return false;
    }
    if (p < end_ && (is_digit(*p) || *p == '.' || *p == 'e' || *p == 'E')) return false;
    if (neg && v == 0) return false;
    out = neg ? -v : v;
    p_ = p;
    return true;
  }

  // A number, only checked. Declined beyond k_max_number_digits digits before or after the
  // point or a two-digit exponent (|value| stays within about 1e-200..1e200, where no reference
  // reports a range error).
  static constexpr long k_max_number_digits = 100;
  bool skip_number() noexcept {
    const char* p = p_;
    if (p < end_ && *p == '-') ++p;
    if (p == end_) return false;
    const char* d = p;
    if (*p == '0') {
      ++p;
    } else if (is_digit(*p)) {
      while (p < end_ && is_digit(*p)) ++p;
    } else {
      return false;
    }
    if (p - d > k_max_number_digits) return false;
    if (p < end_ && *p == '.') {
      d = ++p;
      while (p < end_ && is_digit(*p)) ++p;
      if (p == d || p - d > k_max_number_digits) return false;
    }
    if (p < end_ && (*p == 'e' || *p == 'E')) {
      ++p;
      if (p < end_ && (*p == '+' || *p == '-')) ++p;
      d = p;
      while (p < end_ && is_digit(*p)) ++p;
      if (p == d || p - d > 2) return false;
    }
    p_ = p;
    return true;
  }

  // At '{': calls on_field(key) with p_ at each value; it must consume the value. Keys with
  // escapes: only when skipping (any_key), else not taken.
  template <bool any_key = false, class F>
  bool fields(int depth, F&& on_field) {
    if (depth > max_depth_) return false;
    ++p_;
    ws();
    if (at('}')) {
      ++p_;
      return true;
    }
    for (;;) {
      if (!at('"')) return false;
      std::string_view key;
      if (!scan_string(key) || (!any_key && escaped_)) return false;
      ws();
      if (!at(':')) return false;
      ++p_;
      ws();
      if (!on_field(key)) return false;
      ws();
      if (at(',')) {
        ++p_;
        ws();
      } else if (at('}')) {
        ++p_;
        return true;
      } else {
        return false;
      }
    }
  }

  // At '[': calls on_element(is_first) with p_ at each element; it must consume the element.
  template <class F>
  bool elements(int depth, F&& on_element) {
    if (depth > max_depth_) return false;
    ++p_;
    ws();
    if (at(']')) {
      ++p_;
      return true;
    }
    for (bool first = true;; first = false) {
      if (!on_element(first)) return false;
      ws();
      if (at(',')) {
        ++p_;
        ws();
      } else if (at(']')) {
        ++p_;
        return true;
      } else {
        return false;
      }
    }
  }

  bool skip_value(int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '"': {
        std::string_view raw;
        return scan_string(raw);
      }
      case '{': return fields<true>(depth + 1, [&](std::string_view) { return skip_value(depth + 1); });
      case '[': return elements(depth + 1, [&](bool) { return skip_value(depth + 1); });
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return skip_number();
    }
  }
};

}  // namespace fp::api::scan
