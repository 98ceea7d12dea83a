// Private: the byte-string -> id hash table and the two tiktoken merge loops (shared by the
// tiktoken encodings and byte-level BPE GGUF vocabularies with tiktoken-style ranks).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/common.hpp"

namespace fp::tokenizer::detail {

inline uint64_t load64(const unsigned char* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t load32(const unsigned char* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t mix64(uint64_t a, uint64_t b) noexcept {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// A fast hash of a short byte string (wyhash-style reads: no per-byte loop).
inline uint64_t hash_bytes(const unsigned char* p, size_t n) noexcept {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                     k2 = 0x8ebc6af09c88c6e3ull;
  uint64_t a, b;
  if (n <= 16) {
    if (n >= 4) {
      a = (uint64_t(load32(p)) << 32) | load32(p + ((n >> 3) << 2));
      b = (uint64_t(load32(p + n - 4)) << 32) | load32(p + n - 4 - ((n >> 3) << 2));
    } else if (n > 0) {
      a = (uint64_t(p[0]) << 16) | (uint64_t(p[n >> 1]) << 8) | p[n - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    uint64_t seed = k0;
    size_t i = n;
    while (i > 16) {
      seed = mix64(load64(p) ^ k1, load64(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = load64(p + i - 16) ^ seed;
    b = load64(p + i - 8);
  }
  return mix64(k1 ^ n, mix64(a ^ k1, b ^ k2));
}

// The first min(n, 8) bytes of p as a zero-padded little-endian word, without reading past p+n.
inline uint64_t prefix8(const unsigned char* p, size_t n) noexcept {
  if (n >= 8) return load64(p);
  if (n >= 4) return uint64_t(load32(p)) | (uint64_t(load32(p + n - 4)) << (8 * (n - 4)));
  if (n == 0) return 0;
  return uint64_t(p[0]) | (uint64_t(p[n >> 1]) << (8 * (n >> 1))) | (uint64_t(p[n - 1]) << (8 * (n - 1)));
}

// Immutable open-addressing map from byte strings to ids (ids < 2^31), plus id -> bytes.
// A slot keeps the first 8 bytes, the length and a hash tag inline, so looking up a token of up
// to 8 bytes (most BPE pair lookups) touches one cache line.
class bytes_table {
 public:
  template <class Entries>  // a range of pair<string-like, int32_t>
  result<void> build(const Entries& entries) {
    int32_t max_id = -1;
    size_t total = 0;
    for (const auto& e : entries) {
      max_id = std::max(max_id, e.second);
      total += e.first.size();
    }
    max_id_ = max_id;
    spans_.assign(static_cast<size_t>(max_id) + 1, span{0, UINT32_MAX});
    arena_.clear();
    arena_.reserve(total + 16);
    size_t cap = 16;
    while (cap < entries.size() * 2) cap <<= 1;
    slots_.assign(cap, slot{});
    mask_ = cap - 1;
    for (const auto& [bytes, id] : entries) {
      if (spans_[id].len != UINT32_MAX) {
        return make_error(errc::corrupt_data, "duplicate token id " + std::to_string(id));
      }
      spans_[id] = span{static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(bytes.size())};
      arena_.append(bytes.data(), bytes.size());
    }
    arena_.append(16, '\0');
    for (const auto& [bytes, id] : entries) {
      const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
      const size_t n = bytes.size();
      const uint64_t h = hash_bytes(p, n);
      const uint32_t tag = tag_of(h, n);
      const uint64_t pre = prefix8(p, n);
      size_t i = h & mask_;
      bool dup = false;
      while (slots_[i].id_plus1 != 0) {
        if (matches(slots_[i], tag, pre, p, n)) dup = true;  // same bytes: the first id wins
        i = (i + 1) & mask_;
      }
      if (!dup) slots_[i] = slot{pre, static_cast<uint32_t>(id) + 1, tag};
    }
    for (int b = 0; b < 256; ++b) {
      const unsigned char c = static_cast<unsigned char>(b);
      byte_id_[b] = find(&c, 1);
    }
    pair_id_.resize(65536);
    for (int a = 0; a < 256; ++a) {
      for (int b = 0; b < 256; ++b) {
        const unsigned char c[2] = {static_cast<unsigned char>(a), static_cast<unsigned char>(b)};
        pair_id_[a * 256 + b] = find(c, 2);
      }
    }
    return {};
  }

  // The id of `p[0..n)`, or -1.
  int32_t find(const unsigned char* p, size_t n) const noexcept {
    const uint64_t h = hash_bytes(p, n);
    const uint32_t tag = tag_of(h, n);
    const uint64_t pre = prefix8(p, n);
    size_t i = h & mask_;
    for (;;) {
      const slot& s = slots_[i];
      if (s.id_plus1 == 0) return -1;
      if (matches(s, tag, pre, p, n)) return static_cast<int32_t>(s.id_plus1 - 1);
      i = (i + 1) & mask_;
    }
  }
  int32_t find(std::string_view s) const noexcept {
    return find(reinterpret_cast<const unsigned char*>(s.data()), s.size());
  }
  int32_t byte_id(unsigned char b) const noexcept { return byte_id_[b]; }
  // The id of the two bytes p[0], p[1] (a 256 KB table that stays in L2).
  int32_t pair_id(const unsigned char* p) const noexcept { return pair_id_[p[0] * 256 + p[1]]; }

  std::optional<std::string_view> bytes_of(int32_t id) const noexcept {
    if (id < 0 || id > max_id_ || spans_[id].len == UINT32_MAX) return std::nullopt;
    return std::string_view(arena_.data() + spans_[id].off, spans_[id].len);
  }
  int32_t max_id() const noexcept { return max_id_; }

 private:
  struct slot {
    uint64_t prefix = 0;     // first 8 bytes
    uint32_t id_plus1 = 0;   // 0 = empty
    uint32_t tag_len = 0;    // (hash bits << 8) | min(len, 255)
  };
  struct span {
    uint32_t off, len;
  };
  static uint32_t tag_of(uint64_t h, size_t n) noexcept {
    return (static_cast<uint32_t>(h >> 40) << 8) | static_cast<uint32_t>(std::min<size_t>(n, 255));
  }
  bool matches(const slot& s, uint32_t tag, uint64_t pre, const unsigned char* p, size_t n) const noexcept {
    if (s.tag_len != tag || s.prefix != pre) return false;
    if (n <= 8) return true;
    const span& sp = spans_[s.id_plus1 - 1];
    return sp.len == n && std::memcmp(arena_.data() + sp.off + 8, p + 8, n - 8) == 0;
  }

  std::vector<slot> slots_;
  size_t mask_ = 0;
  std::string arena_;
  std::vector<span> spans_;
  int32_t max_id_ = -1;
  int32_t byte_id_[256] = {};
  std::vector<int32_t> pair_id_;
};

inline constexpr size_t small_piece_max = 96;
inline constexpr uint32_t no_rank = UINT32_MAX;

// tiktoken's merge loop for short pieces: repeatedly merge the lowest-ranked adjacent pair
// (leftmost on ties). Ranks are ids. n <= small_piece_max, n >= 2.
inline void bpe_small(const bytes_table& t, const unsigned char* p, size_t n,
                      std::vector<int32_t>& out) {
  uint32_t start[small_piece_max + 1];
  uint32_t rank[small_piece_max + 1];  // rank of merging part i with part i+1
  int32_t seg[small_piece_max + 1];    // id of part i
  size_t m = n + 1;                    // parts incl. the end sentinel
  for (size_t i = 0; i < n; ++i) {
    start[i] = static_cast<uint32_t>(i);
    seg[i] = t.byte_id(p[i]);
    rank[i] = i + 1 < n ? static_cast<uint32_t>(t.pair_id(p + i)) : no_rank;
  }
  start[n] = static_cast<uint32_t>(n);
  rank[n] = no_rank;
  for (;;) {
    uint32_t best = no_rank;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; ++i) {
      if (rank[i] < best) {
        best = rank[i];
        bi = i;
      }
    }
    if (best == no_rank) break;
    seg[bi] = static_cast<int32_t>(best);
    // Remove part bi+1.
    for (size_t k = bi + 1; k + 1 < m; ++k) {
      start[k] = start[k + 1];
      seg[k] = seg[k + 1];
      rank[k] = rank[k + 1];
    }
    --m;
    // m-1 real parts now; part k spans start[k]..start[k+1].
    auto pair_rank = [&](size_t i) -> uint32_t {
      if (i + 2 >= m) return no_rank;
      return static_cast<uint32_t>(t.find(p + start[i], start[i + 2] - start[i]));
    };
    rank[bi] = pair_rank(bi);
    if (bi > 0) rank[bi - 1] = pair_rank(bi - 1);
  }
  for (size_t i = 0; i + 1 < m; ++i) out.push_back(seg[i]);
}

// The same merge order with a heap and a linked list: O(n log n) for long pieces.
void bpe_large(const bytes_table& t, const unsigned char* p, size_t n, std::vector<int32_t>& out);

}  // namespace fp::tokenizer::detail
