// Private: hand-written scanners equivalent to the tiktoken split regexes (leftmost-first,
// backtracking semantics as in fancy-regex), over Unicode category flags.
//
// o200k: [^\r\n\p{L}\p{N}]?[UP]*[LO]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//        |[^\r\n\p{L}\p{N}]?[UP]+[LO]*(?i:...)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*
//        |\s*[\r\n]+|\s+(?!\S)|\s+          UP = Lu Lt Lm Lo M, LO = Ll Lm Lo M
// cl100k: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//        | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// qwen2: cl100k with \p{N} instead of \p{N}{1,3}.
// The input must be valid UTF-8 (callers sanitize first).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tokenizer/unicode.hpp"

namespace fp::tokenizer::detail {

enum class split_pattern { o200k, cl100k, qwen2 };

struct ascii_table {
  uint16_t v[128];
};
constexpr ascii_table make_ascii() {
  ascii_table t{};
  for (unsigned c = 0; c < 128; ++c) {
    uint16_t f = 0;
    if (c >= 'a' && c <= 'z') f = unicode::f_letter | unicode::f_lower_run;
    else if (c >= 'A' && c <= 'Z') f = unicode::f_letter | unicode::f_upper_run;
    else if (c >= '0' && c <= '9') f = unicode::f_number;
    else if (c == ' ') f = unicode::f_space | unicode::f_separator;
    else if (c < 0x20 || c == 0x7F) f = unicode::f_control | ((c >= 9 && c <= 13) ? unicode::f_space : 0);
    else if (c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' ||
             c == '|' || c == '~') f = unicode::f_symbol;
    else f = unicode::f_punct;
    t.v[c] = f;
  }
  return t;
}
inline constexpr ascii_table k_ascii = make_ascii();

class scanner {
 public:
  scanner(const unsigned char* s, size_t n) noexcept : s_(s), n_(n) {}

  // End of the piece that starts at p (< n).
  size_t next_o200k(size_t p) const noexcept {
    size_t l;
    const uint16_t f = at(p, l);
    const unsigned char c = s_[p];
    if (f & unicode::f_letter) {
      size_t e = a1core(p);
      if (e == npos) e = upper_run_end(p);
      return contraction(e);
    }
    if (f & unicode::f_number) return numbers(p, 3);
    const bool prefix_class = c != '\r' && c != '\n';  // not L, not N already
    if (prefix_class && p + l < n_) {
      size_t e = a1core(p + l);
      if (e != npos) return contraction(e);
      if (f & unicode::f_mark) return contraction(a1core(p));  // c itself is in LO
      size_t l2;
      if (at(p + l, l2) & unicode::f_upper_run) return contraction(upper_run_end(p + l));
    }
    if (!(f & unicode::f_space)) return other_run(p, l, true);
    if (c == ' ' && p + 1 < n_) {
      size_t l2;
      if (is_other(at(p + 1, l2))) return other_run(p + 1, l2, true);
    }
    return whitespace(p);
  }

  size_t next_cl100k(size_t p, int max_digits) const noexcept {
    size_t l;
    const uint16_t f = at(p, l);
    const unsigned char c = s_[p];
    if (c == '\'') {
      const size_t e = contraction(p);
      if (e != p) return e;
    }
    if (f & unicode::f_letter) return letter_run(p);
    if (f & unicode::f_number) return numbers(p, max_digits);
    if (c != '\r' && c != '\n' && p + l < n_) {
      size_t l2;
      if (at(p + l, l2) & unicode::f_letter) return letter_run(p + l);
    }
    if (!(f & unicode::f_space)) return other_run(p, l, false);
    if (c == ' ' && p + 1 < n_) {
      size_t l2;
      if (is_other(at(p + 1, l2))) return other_run(p + 1, l2, false);
    }
    return whitespace(p);
  }

  size_t next(split_pattern pat, size_t p) const noexcept {
    switch (pat) {
      case split_pattern::o200k: return next_o200k(p);
      case split_pattern::cl100k: return next_cl100k(p, 3);
      case split_pattern::qwen2: return next_cl100k(p, 1);
    }
    return n_;
  }

 private:
  static constexpr size_t npos = static_cast<size_t>(-1);

  // Flags of the code point at p, its length in `len`. Valid UTF-8 assumed.
  uint16_t at(size_t p, size_t& len) const noexcept {
    const unsigned c = s_[p];
    if (c < 0x80) {
      len = 1;
      return ascii_flags(c);
    }
    uint32_t cp;
    if (c < 0xE0) {
      cp = ((c & 0x1F) << 6) | (s_[p + 1] & 0x3F);
      len = 2;
    } else if (c < 0xF0) {
      cp = ((c & 0x0F) << 12) | ((s_[p + 1] & 0x3F) << 6) | (s_[p + 2] & 0x3F);
      len = 3;
    } else {
      cp = ((c & 0x07) << 18) | ((s_[p + 1] & 0x3F) << 12) | ((s_[p + 2] & 0x3F) << 6) |
           (s_[p + 3] & 0x3F);
      len = 4;
    }
    return unicode::flags(cp);
  }

  static uint16_t ascii_flags(unsigned c) noexcept { return k_ascii.v[c]; }


  static bool is_other(uint16_t f) noexcept {
    return !(f & (unicode::f_letter | unicode::f_number | unicode::f_space));
  }

  // [UP]*[LO]+ from s: end of the match, or npos.
  size_t a1core(size_t s) const noexcept {
    size_t q = s, last_lower_end = npos, l;
    while (q < n_) {
      const uint16_t f = at(q, l);
      if (!(f & unicode::f_upper_run)) {
        if (f & unicode::f_lower_run) return lower_run_end(q);
        break;
      }
      q += l;
      if (f & unicode::f_lower_run) last_lower_end = q;
    }
    return last_lower_end;
  }
  size_t lower_run_end(size_t q) const noexcept {
    size_t l;
    while (q < n_ && (at(q, l) & unicode::f_lower_run)) q += l;
    return q;
  }
  size_t upper_run_end(size_t q) const noexcept {
    size_t l;
    while (q < n_ && (at(q, l) & unicode::f_upper_run)) q += l;
    return q;
  }
  size_t letter_run(size_t q) const noexcept {
    size_t l;
    while (q < n_ && (at(q, l) & unicode::f_letter)) q += l;
    return q;
  }
  size_t numbers(size_t q, int max) const noexcept {
    size_t l;
    for (int k = 0; k < max && q < n_ && (at(q, l) & unicode::f_number); ++k) q += l;
    return q;
  }
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)? at e: the end after it (e if none). (?i:s) also matches
  // U+017F (long s) under Unicode simple case folding.
  size_t contraction(size_t e) const noexcept {
    if (e + 1 >= n_ || s_[e] != '\'') return e;
    const unsigned char a = s_[e + 1];
    const unsigned la = is_alpha(a) ? (a | 0x20u) : 0u;
    if (la == 's' || la == 't' || la == 'm' || la == 'd') return e + 2;
    if (e + 2 >= n_) return e;
    const unsigned char b = s_[e + 2];
    if (a == 0xC5 && b == 0xBF) return e + 3;  // 'ſ
    const unsigned lb = is_alpha(b) ? (b | 0x20u) : 0u;
    if ((la == 'r' && lb == 'e') || (la == 'v' && lb == 'e') || (la == 'l' && lb == 'l')) return e + 3;
    return e;
  }
  static bool is_alpha(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  }
  // [^\s\p{L}\p{N}]+ then [\r\n]* (or [\r\n/]* for o200k), from q whose code point is "other".
  size_t other_run(size_t q, size_t l, bool slash) const noexcept {
    q += l;
    while (q < n_ && is_other(at(q, l))) q += l;
    while (q < n_ && (s_[q] == '\r' || s_[q] == '\n' || (slash && s_[q] == '/'))) ++q;
    return q;
  }
  // \s*[\r\n]+ | \s+(?!\S) | \s+ from p (whitespace).
  size_t whitespace(size_t p) const noexcept {
    size_t q = p, l, last_nl_end = npos, last_start = p, count = 0;
    while (q < n_) {
      const unsigned char c = s_[q];
      if (c == '\r' || c == '\n') {
        l = 1;
        last_nl_end = q + 1;
      } else if (!(at(q, l) & unicode::f_space)) {
        break;
      }
      last_start = q;
      q += l;
      ++count;
    }
    if (last_nl_end != npos) return last_nl_end;
    if (q == n_ || count < 2) return q;
    return last_start;
  }

  const unsigned char* s_;
  size_t n_;
};

}  // namespace fp::tokenizer::detail
