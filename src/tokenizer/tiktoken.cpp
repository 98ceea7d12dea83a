// tiktoken-compatible byte-level BPE: rank-file loading, the split scanner, the merge loop.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <functional>
#include <memory>

#include "tokenizer/bpe_table.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

namespace fp::tokenizer {

struct tiktoken_encoding::impl {
  std::string name;
  detail::split_pattern pat = detail::split_pattern::o200k;
  std::vector<std::pair<std::string, token_id>> specials;
  detail::bytes_table ranks;  // token bytes <-> rank (= id)
  size_t n_vocab = 0;
  uint64_t uid = next_uid();  // distinct per encoding object, never reused

  static uint64_t next_uid() {
    static std::atomic<uint64_t> n{0};
    return ++n;
  }

  void encode_valid(std::string_view text, std::vector<token_id>& out) const {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    detail::scanner sc(s, n);
    size_t pos = 0;
    while (pos < n) {
      const size_t e = sc.next(pat, pos);
      piece(s + pos, e - pos, out);
      pos = e;
    }
  }

  void encode_ordinary(std::string_view text, std::vector<token_id>& out) const {
    if (unicode::is_valid_utf8(text)) {
      encode_valid(text, out);
    } else {
      const std::string clean = unicode::sanitize_utf8(text);
      encode_valid(clean, out);
    }
  }

  // Per-thread, direct-mapped memo of the merge result of short pieces that are not tokens
  // themselves (identifiers, rare words repeat a lot). Keyed by encoding and bytes; the encoding
  // object itself stays immutable.
  struct piece_cache {
    static constexpr size_t max_len = 24, max_tokens = 12, size = 4096;
    struct entry {
      uint64_t owner = 0;  // impl::uid (not the address: a freed encoding's address is reused)
      uint8_t len = 0, ntok = 0;
      unsigned char bytes[max_len];
      int32_t toks[max_tokens];
    };
    entry e[size];
  };

  void cached_bpe(const unsigned char* p, size_t n, std::vector<token_id>& out) const {
    thread_local std::unique_ptr<piece_cache> cache;
    if (!cache) cache = std::make_unique<piece_cache>();
    const uint64_t h = detail::hash_bytes(p, n) ^ (uid * 0x9E3779B97F4A7C15ull);
    auto& e = cache->e[(h ^ (h >> 29)) & (piece_cache::size - 1)];
    if (e.owner == uid && e.len == n && std::memcmp(e.bytes, p, n) == 0) {
      out.insert(out.end(), e.toks, e.toks + e.ntok);
      return;
    }
    const size_t before = out.size();
    detail::bpe_small(ranks, p, n, out);
    const size_t k = out.size() - before;
    if (k <= piece_cache::max_tokens) {
      e.owner = uid;
      e.len = static_cast<uint8_t>(n);
      e.ntok = static_cast<uint8_t>(k);
      std::memcpy(e.bytes, p, n);
      std::memcpy(e.toks, out.data() + before, k * sizeof(int32_t));
    }
  }

  void piece(const unsigned char* p, size_t n, std::vector<token_id>& out) const {
    const int32_t whole = ranks.find(p, n);
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
    if (n <= piece_cache::max_len) {
      cached_bpe(p, n, out);
    } else if (n <= detail::small_piece_max) {
      detail::bpe_small(ranks, p, n, out);
    } else {
      detail::bpe_large(ranks, p, n, out);
    }
  }
};

namespace {

constexpr int8_t k_b64[256] = {
#define X -1
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, 62, X, X, X, 63, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, X, X,
    X, X, X, X, X, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, X, X, X, X, X, X, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 45, 46, 47, 48, 49, 50, 51, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
    X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X,
#undef X
};

// Standard base64 with '=' padding; false on a malformed string.
bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const unsigned char c = static_cast<unsigned char>(in[i + k]);
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return false;
        v[k] = k_b64[c];
        if (v[k] < 0) return false;
      }
    }
    const uint32_t w = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
    out += static_cast<char>(w >> 16);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return true;
}

}  // namespace

result<std::shared_ptr<const tiktoken_encoding>> tiktoken_encoding::from_rank_text(
    spec s, std::string_view text) {
  auto p = std::make_unique<impl>();
  p->name = std::move(s.name);
  switch (s.pat) {
    case pattern::o200k: p->pat = detail::split_pattern::o200k; break;
    case pattern::cl100k: p->pat = detail::split_pattern::cl100k; break;
    case pattern::qwen2: p->pat = detail::split_pattern::qwen2; break;
  }
  p->specials = std::move(s.specials);

  // Decode every token into one buffer first (no allocation per token).
  std::string storage;
  storage.reserve(text.size() * 3 / 4);
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // offset, length in storage
  std::vector<int32_t> ids;
  spans.reserve(text.size() / 16);
  ids.reserve(text.size() / 16);
  std::string bytes;
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || !base64_decode(line.substr(0, sp), bytes) || bytes.empty()) {
      return make_error(errc::corrupt_data, fmt::format("rank file line {}: malformed", line_no));
    }
    int64_t rank = 0;
    const std::string_view num = line.substr(sp + 1);
    if (num.empty() || num.size() > 10) {
      return make_error(errc::corrupt_data, fmt::format("rank file line {}: bad rank", line_no));
    }
    for (const char c : num) {
      if (c < '0' || c > '9') {
        return make_error(errc::corrupt_data, fmt::format("rank file line {}: bad rank", line_no));
      }
      rank = rank * 10 + (c - '0');
    }
    if (rank >= (int64_t{1} << 30)) {
      return make_error(errc::corrupt_data, fmt::format("rank file line {}: rank too large", line_no));
    }
    spans.emplace_back(static_cast<uint32_t>(storage.size()), static_cast<uint32_t>(bytes.size()));
    storage += bytes;
    ids.push_back(static_cast<int32_t>(rank));
  }
  std::vector<std::pair<std::string_view, int32_t>> entries;
  entries.reserve(spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    entries.emplace_back(std::string_view(storage).substr(spans[i].first, spans[i].second), ids[i]);
  }
  if (entries.empty()) return make_error(errc::corrupt_data, "rank file is empty");
  auto built = p->ranks.build(entries);
  if (!built) return built.error();
  // Byte-level BPE needs every single byte as a token.
  for (int b = 0; b < 256; ++b) {
    const unsigned char c = static_cast<unsigned char>(b);
    if (p->ranks.find(&c, 1) < 0) {
      return make_error(errc::corrupt_data, fmt::format("rank file has no token for byte {}", b));
    }
  }
  size_t n_vocab = p->ranks.max_id() + 1;
  for (const auto& [str, id] : p->specials) {
    if (id < 0 || p->ranks.bytes_of(id)) {
      return make_error(errc::corrupt_data, fmt::format("special token {} collides", str));
    }
    n_vocab = std::max(n_vocab, static_cast<size_t>(id) + 1);
  }
  p->n_vocab = n_vocab;
  return std::shared_ptr<const tiktoken_encoding>(new tiktoken_encoding(std::move(p)));
}

result<std::shared_ptr<const tiktoken_encoding>> tiktoken_encoding::load(spec s,
                                                                        const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return make_error(errc::io_error, fmt::format("cannot open rank file {}", path));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) return make_error(errc::io_error, fmt::format("cannot read rank file {}", path));
  return from_rank_text(std::move(s), data);
}

tiktoken_encoding::tiktoken_encoding(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
tiktoken_encoding::~tiktoken_encoding() = default;

std::string_view tiktoken_encoding::name() const noexcept { return impl_->name; }
size_t tiktoken_encoding::n_vocab() const noexcept { return impl_->n_vocab; }

void tiktoken_encoding::encode_ordinary(std::string_view text, std::vector<token_id>& out) const {
  impl_->encode_ordinary(text, out);
}

std::vector<token_id> tiktoken_encoding::encode_ordinary(std::string_view text) const {
  std::vector<token_id> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode_ordinary(text, out);
  return out;
}

void tiktoken_encoding::encode(std::string_view text, const allowed_special& allowed,
                               std::vector<token_id>& out) const {
  std::vector<const std::pair<std::string, token_id>*> act;
  for (const auto& sp : impl_->specials) {
    if (allowed.all || std::find(allowed.names.begin(), allowed.names.end(), sp.first) != allowed.names.end()) {
      act.push_back(&sp);
    }
  }
  if (act.empty()) {
    impl_->encode_ordinary(text, out);
    return;
  }
  std::string clean;
  if (!unicode::is_valid_utf8(text)) {
    clean = unicode::sanitize_utf8(text);
    text = clean;
  }
  // Next occurrence of each allowed special, recomputed only once passed.
  std::vector<size_t> next(act.size(), 0);
  std::vector<bool> fresh(act.size(), false);
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t best = std::string_view::npos, which = 0;
    for (size_t k = 0; k < act.size(); ++k) {
      if (!fresh[k] || next[k] < pos) {
        next[k] = text.find(act[k]->first, pos);
        fresh[k] = true;
      }
      if (next[k] < best || (next[k] == best && next[k] != std::string_view::npos &&
                             act[k]->first.size() > act[which]->first.size())) {
        best = next[k];
        which = k;
      }
    }
    if (best == std::string_view::npos) {
      impl_->encode_valid(text.substr(pos), out);
      return;
    }
    impl_->encode_valid(text.substr(pos, best - pos), out);
    out.push_back(act[which]->second);
    pos = best + act[which]->first.size();
  }
}

void tiktoken_encoding::encode(std::string_view text, bool /*add_bos*/, bool parse_special,
                               std::vector<token_id>& out) const {
  if (parse_special) {
    encode(text, allowed_special::everything(), out);
  } else {
    impl_->encode_ordinary(text, out);
  }
}

size_t tiktoken_encoding::count(std::string_view text) const {
  thread_local std::vector<token_id> scratch;
  scratch.clear();
  impl_->encode_ordinary(text, scratch);
  const size_t n = scratch.size();
  if (scratch.capacity() > (size_t{1} << 22)) std::vector<token_id>().swap(scratch);
  return n;
}

std::optional<std::string_view> tiktoken_encoding::find_special(std::string_view text) const {
  size_t best = std::string_view::npos;
  std::optional<std::string_view> found;
  for (const auto& sp : impl_->specials) {
    const size_t at = text.find(sp.first);
    if (at < best) {
      best = at;
      found = sp.first;
    }
  }
  return found;
}

std::optional<std::string_view> tiktoken_encoding::token_bytes(token_id id) const noexcept {
  if (auto b = impl_->ranks.bytes_of(id)) return b;
  for (const auto& sp : impl_->specials) {
    if (sp.second == id) return std::string_view(sp.first);
  }
  return std::nullopt;
}

std::optional<token_id> tiktoken_encoding::special_id(std::string_view special) const noexcept {
  for (const auto& sp : impl_->specials) {
    if (sp.first == special) return sp.second;
  }
  return std::nullopt;
}

const std::vector<std::pair<std::string, token_id>>& tiktoken_encoding::specials() const noexcept {
  return impl_->specials;
}

result<std::string> tiktoken_encoding::decode(std::span<const token_id> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (const token_id id : ids) {
    auto b = token_bytes(id);
    if (!b) return make_error(errc::invalid_request, fmt::format("token id {} is not in {}", id, impl_->name));
    out.append(*b);
  }
  return out;
}

}  // namespace fp::tokenizer
