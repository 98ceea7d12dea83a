// Tokenizers described by GGUF `tokenizer.ggml.*` metadata, behaving as llama.cpp's
// llama_tokenize: SentencePiece-style (`llama`), byte-level BPE (`gpt2`, with the
// pre-tokenizer named by `tokenizer.ggml.pre`) and WordPiece (`bert`).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <unordered_map>

#include "gguf/gguf.hpp"
#include "tokenizer/bpe_table.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

namespace fp::tokenizer {
namespace {

// llama.cpp token types (tokenizer.ggml.token_type).
enum : int32_t { tt_normal = 1, tt_unknown = 2, tt_control = 3, tt_user_defined = 4, tt_unused = 5, tt_byte = 6 };

constexpr std::string_view k_space_escape = "\xE2\x96\x81";  // U+2581 "▁"

// GPT-2's byte <-> printable code point mapping.
std::array<uint32_t, 256> make_byte_to_cp() {
  std::array<uint32_t, 256> m{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) m[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
  return m;
}
const std::array<uint32_t, 256> k_byte_to_cp = make_byte_to_cp();

// Inverse of k_byte_to_cp (all mapped code points are < 324).
std::array<int16_t, 324> make_cp_to_byte() {
  std::array<int16_t, 324> m{};
  m.fill(-1);
  for (int b = 0; b < 256; ++b) m[k_byte_to_cp[b]] = static_cast<int16_t>(b);
  return m;
}
const std::array<int16_t, 324> k_cp_to_byte = make_cp_to_byte();

int cp_to_byte(uint32_t cp) { return cp < k_cp_to_byte.size() ? k_cp_to_byte[cp] : -1; }

// Byte-level decode of a BPE token text; false if it has a code point outside the mapping.
bool byte_decode(std::string_view text, std::string& out) {
  out.clear();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    size_t len;
    const uint32_t cp = unicode::decode_utf8(s, text.size(), i, len);
    const int b = cp_to_byte(cp);
    if (b < 0) return false;
    out += static_cast<char>(b);
    i += len;
  }
  return true;
}

struct regex_deleter {
  void operator()(pcre2_code* c) const noexcept { pcre2_code_free(c); }
};
using regex_ptr = std::unique_ptr<pcre2_code, regex_deleter>;

// llama.cpp's pre-tokenizer regex lists, by `tokenizer.ggml.pre`.
struct pre_spec {
  std::vector<std::string_view> names;
  std::vector<const char*> regexes;  // empty when `fast` is set
  std::optional<detail::split_pattern> fast;
  bool ignore_merges = false;
  bool add_bos = false;
};

constexpr const char* k_gpt2_re = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
const std::vector<pre_spec>& pre_specs() {
  static const std::vector<pre_spec> specs = {
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"}, {}, detail::split_pattern::cl100k, true, true},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {}, detail::split_pattern::qwen2},
      {{"gpt-4o", "llama4"}, {}, detail::split_pattern::o200k},
      {{"deepseek-llm"},
       {"[\r\n]",
        "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝ\\x{1F5F}-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌ\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
        "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", k_gpt2_re, "[0-9][0-9][0-9]"}},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}, {"\\p{N}", k_gpt2_re}},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v1-en", "jina-v2-es",
        "jina-v2-de", "jina-v2-code", "roberta-bpe", "exaone4"},
       {k_gpt2_re}},

      {{"default", ""}, {R"([\p{P}\$\+<=>\^~\|]+)", k_gpt2_re, "\\p{N}+", "[0-9][0-9][0-9]"}},
  };
  return specs;
}
#pragma GCC diagnostic pop

struct spm_symbol {
  int prev, next;
  uint32_t off, n;
};
struct spm_bigram {
  int left, right;
  float score;
  uint32_t size;
  bool operator<(const spm_bigram& o) const noexcept {
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

struct gguf_vocab::impl {
  kind type = kind::spm;
  std::string model, pre, display;
  std::vector<std::string> texts;
  std::vector<float> scores;
  std::vector<int32_t> types;
  detail::bytes_table text_ids;  // token text -> id (the last id wins, as in llama.cpp)
  size_t max_token_len = 0;

  // BPE
  detail::bytes_table raw_ids;  // byte-decoded token text -> id
  std::array<int32_t, 256> byte_tok{};
  std::unordered_map<uint64_t, std::pair<uint32_t, int32_t>> merges;  // (a, b) -> (rank, a+b)
  std::optional<detail::split_pattern> fast;
  std::vector<regex_ptr> regexes;
  bool ignore_merges = false;

  // specials
  std::vector<int32_t> special_cache;  // control / user-defined / unknown, longest text first
  token_id bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, sep = -1, pad = -1;
  bool add_bos = false, add_eos = false, add_sep = false, add_space_prefix = false;
  bool wpm_lowercase = true, wpm_strip_accents = true;
  std::vector<uint8_t> eog;

  // ---- fragments (special-token partition) ----
  struct fragment {
    token_id token;  // -1 for text
    size_t off, len;
  };

  void partition(std::string_view text, bool parse_special, std::vector<fragment>& frags) const {
    frags.clear();
    if (text.empty()) return;
    frags.push_back({-1, 0, text.size()});
    for (const int32_t id : special_cache) {
      if (!parse_special && (types[id] == tt_control || types[id] == tt_unknown)) continue;
      const std::string& st = texts[id];
      if (st.empty()) continue;
      std::vector<fragment> next;
      bool changed = false;
      for (const auto& f : frags) {
        if (f.token >= 0) {
          next.push_back(f);
          continue;
        }
        size_t off = f.off, len = f.len;
        for (;;) {
          const size_t m = text.substr(0, off + len).find(st, off);
          if (m == std::string_view::npos) {
            if (len > 0) next.push_back({-1, off, len});
            break;
          }
          changed = true;
          if (m > off) next.push_back({-1, off, m - off});
          next.push_back({id, 0, 0});
          const size_t end = m + st.size();
          len = off + len - end;
          off = end;
          if (len == 0) break;
        }
      }
      if (changed) frags.swap(next);
    }
  }

  // ---- SPM ----
  // llama.cpp runs the bigram merge over the whole text. When no token has "▁" right after
  // another character (checked at load; true for Llama/Phi-3 vocabularies), no merge can cross
  // the point before a "▁" that follows another character, so each word is merged on its own:
  // the same result, without a heap over the whole text.
  bool spm_word_split = false;

  void spm_tokenize(std::string_view text, std::vector<token_id>& out) const {
    if (!spm_word_split) {
      spm_merge(text, out);
      return;
    }
    size_t start = 0;
    for (size_t i = 1; i + 3 <= text.size(); ++i) {
      if (text.compare(i, 3, k_space_escape) == 0 && !(i >= 3 && text.compare(i - 3, 3, k_space_escape) == 0)) {
        spm_merge(text.substr(start, i - start), out);
        start = i;
      }
    }
    spm_merge(text.substr(start), out);
  }

  void spm_merge(std::string_view text, std::vector<token_id>& out) const {
    thread_local std::vector<spm_symbol> sym;
    thread_local std::vector<spm_bigram> q;  // max-heap by score, then leftmost
    sym.clear();
    q.clear();
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    size_t offs = 0;
    int index = 0;
    while (offs < text.size()) {
      const unsigned c = s[offs];
      size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      len = std::min(len, text.size() - offs);
      sym.push_back({index - 1, offs + len == text.size() ? -1 : index + 1, static_cast<uint32_t>(offs),
                     static_cast<uint32_t>(len)});
      offs += len;
      ++index;
    }
    auto try_add = [&](int l, int r) {
      if (l == -1 || r == -1) return;
      const uint32_t n = sym[l].n + sym[r].n;
      const int32_t id = text_ids.find(s + sym[l].off, n);
      if (id < 0) return;
      q.push_back({l, r, scores[id], n});
      std::push_heap(q.begin(), q.end());
    };
    for (int i = 1; i < static_cast<int>(sym.size()); ++i) try_add(i - 1, i);
    while (!q.empty()) {
      std::pop_heap(q.begin(), q.end());
      const spm_bigram b = q.back();
      q.pop_back();
      auto& l = sym[b.left];
      auto& r = sym[b.right];
      if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
      l.n += r.n;
      r.n = 0;
      l.next = r.next;
      if (r.next >= 0) sym[r.next].prev = b.left;
      try_add(l.prev, b.left);
      try_add(b.left, l.next);
    }
    if (sym.empty()) return;
    for (int i = 0; i != -1; i = sym[i].next) {
      const int32_t id = text_ids.find(s + sym[i].off, sym[i].n);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (uint32_t k = 0; k < sym[i].n; ++k) {
        const int32_t b = byte_tok[s[sym[i].off + k]];
        out.push_back(b >= 0 ? b : unk);
      }
    }
  }

  // ---- BPE ----
  void bpe_word(const unsigned char* p, size_t n, std::vector<token_id>& out) const {
    if (n == 0) return;
    if (ignore_merges) {
      const int32_t whole = raw_ids.find(p, n);
      if (whole >= 0) {
        out.push_back(whole);
        return;
      }
    }
    struct node {
      int prev, next;
      int32_t id;
    };
    using item = std::pair<uint64_t, uint64_t>;  // (rank << 32 | left), (a << 32 | b) ids
    // Per-thread scratch: no allocation per word once warm.
    thread_local std::vector<node> nodes;
    thread_local std::vector<item> q;
    nodes.resize(n);
    q.clear();
    for (size_t i = 0; i < n; ++i) {
      nodes[i] = {static_cast<int>(i) - 1, i + 1 < n ? static_cast<int>(i + 1) : -1, byte_tok[p[i]]};
    }
    auto add = [&](int l) {
      if (l < 0 || nodes[l].next < 0) return;
      const int r = nodes[l].next;
      if (nodes[l].id < 0 || nodes[r].id < 0) return;
      const uint64_t key = (uint64_t(uint32_t(nodes[l].id)) << 32) | uint32_t(nodes[r].id);
      const auto it = merges.find(key);
      if (it == merges.end()) return;
      q.emplace_back((uint64_t(it->second.first) << 32) | uint32_t(l), key);
      std::push_heap(q.begin(), q.end(), std::greater<>());
    };
    for (size_t i = 0; i + 1 < n; ++i) add(static_cast<int>(i));
    while (!q.empty()) {
      std::pop_heap(q.begin(), q.end(), std::greater<>());
      const auto [rk, key] = q.back();
      q.pop_back();
      const int l = static_cast<int>(uint32_t(rk));
      const int r = nodes[l].next;
      if (nodes[l].id < -1 || r < 0) continue;  // merged away / at end
      const uint64_t cur = (uint64_t(uint32_t(nodes[l].id)) << 32) | uint32_t(nodes[r].id);
      if (cur != key) continue;  // stale
      nodes[l].id = merges.at(key).second;
      nodes[l].next = nodes[r].next;
      if (nodes[r].next >= 0) nodes[nodes[r].next].prev = l;
      nodes[r].id = -2;  // dead
      add(nodes[l].prev);
      add(l);
    }
    for (int i = 0; i != -1; i = nodes[i].next) {
      if (nodes[i].id >= 0) out.push_back(nodes[i].id);
    }
  }

  void bpe_split(std::string_view text, std::vector<token_id>& out) const {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    if (fast) {
      detail::scanner sc(s, text.size());
      size_t pos = 0;
      while (pos < text.size()) {
        const size_t e = sc.next(*fast, pos);
        bpe_word(s + pos, e - pos, out);
        pos = e;
      }
      return;
    }
    // llama.cpp's unicode_regex_split: each regex splits every current piece into its matches
    // and the gaps between them.
    std::vector<std::pair<size_t, size_t>> pieces{{0, text.size()}}, next;
    pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
    for (const auto& re : regexes) {
      next.clear();
      for (const auto& [off, len] : pieces) {
        size_t pos = 0;
        size_t last = 0;
        while (pos <= len) {
          const int rc = pcre2_match(re.get(), s + off, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
          if (rc < 0) break;
          const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
          const size_t ms = ov[0], me = ov[1];
          if (me == ms) {  // empty match: step one code point
            pos = ms + 1;
            while (pos < len && (s[off + pos] & 0xC0) == 0x80) ++pos;
            continue;
          }
          if (ms > last) next.emplace_back(off + last, ms - last);
          next.emplace_back(off + ms, me - ms);
          last = me;
          pos = me;
        }
        if (last < len) next.emplace_back(off + last, len - last);
      }
      pieces.swap(next);
    }
    pcre2_match_data_free(md);
    for (const auto& [off, len] : pieces) bpe_word(s + off, len, out);
  }

  // ---- WPM ----
  void wpm_tokenize(std::string_view text, std::vector<token_id>& out) const {
    std::vector<std::string> words(1);
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    size_t i = 0;
    while (i < text.size()) {
      size_t len;
      uint32_t cp = unicode::decode_utf8(s, text.size(), i, len);
      i += len;
      if (wpm_strip_accents) cp = unicode::nfd_first(cp);
      const uint16_t f = unicode::flags(cp);
      if (f & unicode::f_space) {
        if (!words.back().empty()) words.emplace_back();
        continue;
      }
      if (cp == 0 || cp == unicode::replacement_char || (f & unicode::f_control)) continue;
      if (wpm_strip_accents && (f & unicode::f_mark)) continue;
      std::string c;
      unicode::append_utf8(c, wpm_lowercase ? unicode::to_lower(cp) : cp);
      const bool chinese = (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
                           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
                           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
                           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
      if ((f & unicode::f_punct) || (cp < 0x7F && (f & unicode::f_symbol)) || chinese) {
        if (!words.back().empty()) words.emplace_back();
        words.back() = c;
        words.emplace_back();
      } else {
        words.back() += c;
      }
    }
    for (const auto& word : words) {
      if (word.empty()) continue;
      const std::string w = std::string(k_space_escape) + word;
      const size_t n = w.size();
      const size_t before = out.size();
      const auto* p = reinterpret_cast<const unsigned char*>(w.data());
      for (size_t a = 0; a < n; ++a) {
        bool match = false;
        for (size_t b = std::min(n, a + max_token_len + 1); b > a; --b) {
          const int32_t id = text_ids.find(p + a, b - a);
          if (id >= 0) {
            out.push_back(id);
            match = true;
            a = b - 1;
            break;
          }
        }
        if (!match) {
          out.resize(before);
          break;
        }
      }
      if (out.size() == before) out.push_back(unk);
    }
  }

  void encode(std::string_view text, bool add_special, bool parse_special, std::vector<token_id>& out) const {
    std::string clean;
    if (type != kind::spm && !unicode::is_valid_utf8(text)) {
      clean = unicode::sanitize_utf8(text);
      text = clean;
    }
    std::vector<fragment> frags;
    partition(text, parse_special, frags);
    switch (type) {
      case kind::spm: {
        if (add_special && add_bos && bos >= 0) out.push_back(bos);
        bool prev_special = true;
        std::string buf;
        for (const auto& f : frags) {
          if (f.token >= 0) {
            out.push_back(f.token);
            prev_special = true;
            continue;
          }
          buf.clear();
          if (add_space_prefix && prev_special) buf += k_space_escape;
          for (const char c : text.substr(f.off, f.len)) {
            if (c == ' ') {
              buf += k_space_escape;
            } else {
              buf += c;
            }
          }
          spm_tokenize(buf, out);
          prev_special = false;
        }
        if (add_special && add_eos && eos >= 0) out.push_back(eos);
        break;
      }
      case kind::bpe: {
        if (add_special && add_bos && bos >= 0) out.push_back(bos);
        for (const auto& f : frags) {
          if (f.token >= 0) {
            out.push_back(f.token);
          } else {
            bpe_split(text.substr(f.off, f.len), out);
          }
        }
        if (add_special && add_eos && eos >= 0) out.push_back(eos);
        break;
      }
      case kind::wpm: {
        if (add_special && bos >= 0) out.push_back(bos);
        for (const auto& f : frags) {
          if (f.token >= 0) {
            out.push_back(f.token);
          } else {
            wpm_tokenize(text.substr(f.off, f.len), out);
          }
        }
        if (add_special && sep >= 0) out.push_back(sep);
        break;
      }
    }
  }

  std::string piece(token_id id, bool special) const {
    if (id < 0 || static_cast<size_t>(id) >= texts.size()) return {};
    const std::string& t = texts[id];
    const int32_t ty = types[id];
    if (ty == tt_control || ty == tt_unknown) return special ? t : std::string();
    if (ty == tt_user_defined) return t;
    if (type == kind::bpe) {
      std::string out;
      if (!byte_decode(t, out)) return t;
      return out;
    }
    if (ty == tt_byte && t.size() == 6 && t.starts_with("<0x")) {
      return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    }
    if (ty == tt_unused) return {};
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, k_space_escape) == 0) {
        out += ' ';
        i += 3;
      } else {
        out += t[i++];
      }
    }
    return out;
  }
};

result<std::shared_ptr<const gguf_vocab>> gguf_vocab::from_gguf(const gguf::file& f) {
  auto p = std::make_unique<impl>();
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model) return make_error(errc::unsupported, "GGUF file has no tokenizer.ggml.model");
  p->model = std::string(*model);
  if (auto pre = f.get_string("tokenizer.ggml.pre")) p->pre = std::string(*pre);

  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) return make_error(errc::corrupt_data, "GGUF file has no tokenizer.ggml.tokens");
  const size_t n = tokens->size();
  if (n == 0 || n > (size_t{1} << 24)) return make_error(errc::corrupt_data, "bad vocabulary size");
  p->texts.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string w((*tokens)[i]);
    if (w.empty()) w = "[EMPTY_" + std::to_string(i) + "]";
    p->max_token_len = std::max(p->max_token_len, w.size());
    p->texts.push_back(std::move(w));
  }
  p->scores.assign(n, 0.0f);
  if (f.has("tokenizer.ggml.scores")) {
    auto sc = f.get_float_array("tokenizer.ggml.scores");
    if (!sc || sc->size() < n) return make_error(errc::corrupt_data, "bad tokenizer.ggml.scores");
    std::copy(sc->begin(), sc->begin() + static_cast<ptrdiff_t>(n), p->scores.begin());
  }
  p->types.assign(n, tt_normal);
  if (f.has("tokenizer.ggml.token_type")) {
    auto ty = f.get_int_array("tokenizer.ggml.token_type");
    if (!ty || ty->size() < n) return make_error(errc::corrupt_data, "bad tokenizer.ggml.token_type");
    for (size_t i = 0; i < n; ++i) p->types[i] = static_cast<int32_t>((*ty)[i]);
  }
  {
    std::vector<std::pair<std::string, int32_t>> entries;
    entries.reserve(n);
    for (size_t i = n; i-- > 0;) entries.emplace_back(p->texts[i], static_cast<int32_t>(i));
    auto b = p->text_ids.build(entries);
    if (!b) return b.error();
  }

  if (p->model == "llama") {
    p->type = kind::spm;
    p->bos = 1;
    p->eos = 2;
    p->unk = 0;
    p->add_space_prefix = true;
    p->add_bos = true;
    p->display = "llama (spm)";
  } else if (p->model == "bert") {
    p->type = kind::wpm;
    p->bos = 101;
    p->unk = 100;
    p->sep = 102;
    p->pad = 0;
    p->add_bos = true;
    p->add_sep = true;
    p->display = "bert (wpm)";
  } else if (p->model == "gpt2") {
    p->type = kind::bpe;
    p->bos = 11;
    p->eos = 11;
    const pre_spec* spec = nullptr;
    for (const auto& s : pre_specs()) {
      if (std::find(s.names.begin(), s.names.end(), p->pre) != s.names.end()) spec = &s;
    }
    if (!spec) return make_error(errc::unsupported, fmt::format("unsupported pre-tokenizer '{}'", p->pre));
    p->fast = spec->fast;
    p->ignore_merges = spec->ignore_merges;
    p->add_bos = spec->add_bos;
    for (const char* re : spec->regexes) {
      int err = 0;
      PCRE2_SIZE erroff = 0;
      pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re), PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &erroff, nullptr);
      if (!c) return make_error(errc::internal, fmt::format("pre-tokenizer regex {} does not compile", re));
      pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is absent
      p->regexes.emplace_back(c);
    }
    // Byte-level tables.
    std::string raw;
    std::vector<std::pair<std::string, int32_t>> entries;
    entries.reserve(n);
    for (size_t i = n; i-- > 0;) {
      if (byte_decode(p->texts[i], raw)) entries.emplace_back(raw, static_cast<int32_t>(i));
    }
    auto b = p->raw_ids.build(entries);
    if (!b) return b.error();
    for (int by = 0; by < 256; ++by) {
      std::string c;
      unicode::append_utf8(c, k_byte_to_cp[by]);
      p->byte_tok[by] = p->text_ids.find(c);
    }
    auto merges = f.get_string_array("tokenizer.ggml.merges");
    if (!merges) return make_error(errc::corrupt_data, "BPE vocabulary without tokenizer.ggml.merges");
    p->merges.reserve(merges->size() * 2);
    for (size_t r = 0; r < merges->size(); ++r) {
      const std::string_view m = (*merges)[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string_view::npos) continue;
      const std::string_view a = m.substr(0, sp), bb = m.substr(sp + 1);
      const int32_t ia = p->text_ids.find(a), ib = p->text_ids.find(bb);
      std::string ab(a);
      ab += bb;
      const int32_t iab = p->text_ids.find(ab);
      if (ia < 0 || ib < 0 || iab < 0) continue;
      p->merges.emplace((uint64_t(uint32_t(ia)) << 32) | uint32_t(ib), std::make_pair(static_cast<uint32_t>(r), iab));
    }
    p->display = "gpt2/" + (p->pre.empty() ? std::string("default") : p->pre);
  } else {
    return make_error(errc::unsupported, fmt::format("unsupported tokenizer model '{}'", p->model));
  }

  auto read_id = [&](std::string_view key, token_id& id) -> result<void> {
    if (id >= 0 && static_cast<size_t>(id) >= n) id = -1;
    if (!f.has(key)) return {};
    auto v = f.get_int(key);
    if (!v) return v.error();
    if (*v >= 0 && static_cast<size_t>(*v) < n) id = static_cast<token_id>(*v);
    return {};
  };
  for (auto [key, ref] : {std::pair<std::string_view, token_id*>{"tokenizer.ggml.bos_token_id", &p->bos},
                          {"tokenizer.ggml.eos_token_id", &p->eos},
                          {"tokenizer.ggml.eot_token_id", &p->eot},
                          {"tokenizer.ggml.eom_token_id", &p->eom},
                          {"tokenizer.ggml.unknown_token_id", &p->unk},
                          {"tokenizer.ggml.seperator_token_id", &p->sep},
                          {"tokenizer.ggml.padding_token_id", &p->pad}}) {
    auto r = read_id(key, *ref);
    if (!r) return r.error();
  }
  for (auto [key, ref] : {std::pair<std::string_view, bool*>{"tokenizer.ggml.add_bos_token", &p->add_bos},
                          {"tokenizer.ggml.add_eos_token", &p->add_eos},
                          {"tokenizer.ggml.add_sep_token", &p->add_sep},
                          {"tokenizer.ggml.add_space_prefix", &p->add_space_prefix}}) {
    auto v = f.get_bool_or(key, *ref);
    if (!v) return v.error();
    *ref = *v;
  }
  if (p->type == kind::wpm) {
    auto lc = f.get_bool_or("tokenizer.ggml.normalizer.lowercase", true);
    if (lc) p->wpm_lowercase = *lc;
    auto sa = f.get_bool_or("tokenizer.ggml.normalizer.strip_accents", p->wpm_lowercase);
    if (sa) p->wpm_strip_accents = *sa;
  }

  // SPM byte tokens <0xXX>, and whether words can be merged one at a time.
  if (p->type == kind::spm) {
    p->spm_word_split = std::none_of(p->texts.begin(), p->texts.end(), [](const std::string& t) {
      for (size_t k = 1; k + 3 <= t.size(); ++k) {
        if (t.compare(k, 3, k_space_escape) == 0 && !(k >= 3 && t.compare(k - 3, 3, k_space_escape) == 0)) return true;
      }
      return false;
    });
    for (int by = 0; by < 256; ++by) {
      p->byte_tok[by] = p->text_ids.find(fmt::format("<0x{:02X}>", by));
      if (p->byte_tok[by] < 0) p->byte_tok[by] = p->text_ids.find(std::string(1, static_cast<char>(by)));
    }
  }

  // End-of-generation set and the special-token cache.
  p->eog.assign(n, 0);
  for (const token_id id : {p->eos, p->eot, p->eom}) {
    if (id >= 0) p->eog[id] = 1;
  }
  static constexpr std::string_view k_eog_texts[] = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>"};
  for (size_t i = 0; i < n; ++i) {
    if (std::find(std::begin(k_eog_texts), std::end(k_eog_texts), p->texts[i]) != std::end(k_eog_texts)) {
      if (p->eot < 0 && p->texts[i] != "<|endoftext|>" && p->texts[i] != "<|eom_id|>") p->eot = static_cast<token_id>(i);
      p->eog[i] = 1;
    }
    const int32_t t = p->types[i];
    if (t == tt_control || t == tt_user_defined || t == tt_unknown) p->special_cache.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(p->special_cache.begin(), p->special_cache.end(), [&](int32_t a, int32_t b) {
    return p->texts[a].size() > p->texts[b].size();
  });
  return std::shared_ptr<const gguf_vocab>(new gguf_vocab(std::move(p)));
}

result<std::shared_ptr<const gguf_vocab>> gguf_vocab::load(const std::string& path) {
  auto f = gguf::file::open(path);
  if (!f) return f.error();
  return from_gguf(**f);
}

gguf_vocab::gguf_vocab(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
gguf_vocab::~gguf_vocab() = default;

std::string_view gguf_vocab::name() const noexcept { return impl_->display; }
size_t gguf_vocab::n_vocab() const noexcept { return impl_->texts.size(); }

void gguf_vocab::encode(std::string_view text, bool add_bos, bool parse_special,
                        std::vector<token_id>& out) const {
  impl_->encode(text, add_bos, parse_special, out);
}

result<std::string> gguf_vocab::decode(std::span<const token_id> ids) const {
  std::string out;
  // SentencePiece put a space in front of the text and after every special token (add_space_prefix);
  // WordPiece in front of every word. Those spaces are removed again.
  const bool strip = (impl_->type == kind::spm && impl_->add_space_prefix) || impl_->type == kind::wpm;
  bool after_special = true;
  for (const token_id id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->texts.size()) {
      return make_error(errc::invalid_request, fmt::format("token id {} is not in the vocabulary", id));
    }
    std::string p = impl_->piece(id, true);
    const int32_t ty = impl_->types[id];
    const bool special = ty == tt_control || ty == tt_unknown || ty == tt_user_defined;
    if (strip && after_special && !special && !p.empty() && p[0] == ' ') p.erase(0, 1);
    if (impl_->type != kind::wpm) after_special = special;
    else after_special = false;
    out += p;
  }
  return out;
}

std::string gguf_vocab::token_to_piece(token_id id, bool special) const { return impl_->piece(id, special); }

std::string_view gguf_vocab::token_text(token_id id) const noexcept {
  if (id < 0 || static_cast<size_t>(id) >= impl_->texts.size()) return {};
  return impl_->texts[id];
}

std::optional<token_id> gguf_vocab::find_token(std::string_view text) const noexcept {
  const int32_t id = impl_->text_ids.find(text);
  if (id < 0) return std::nullopt;
  return id;
}

gguf_vocab::kind gguf_vocab::type() const noexcept { return impl_->type; }
token_id gguf_vocab::bos() const noexcept { return impl_->bos; }
token_id gguf_vocab::eos() const noexcept { return impl_->eos; }
token_id gguf_vocab::eot() const noexcept { return impl_->eot; }
token_id gguf_vocab::unk() const noexcept { return impl_->unk; }
bool gguf_vocab::add_bos() const noexcept { return impl_->add_bos; }
bool gguf_vocab::add_eos() const noexcept { return impl_->add_eos; }
bool gguf_vocab::is_control(token_id id) const noexcept {
  return id >= 0 && static_cast<size_t>(id) < impl_->types.size() && impl_->types[id] == tt_control;
}
bool gguf_vocab::is_eog(token_id id) const noexcept {
  return id >= 0 && static_cast<size_t>(id) < impl_->eog.size() && impl_->eog[id];
}

}  // namespace fp::tokenizer
