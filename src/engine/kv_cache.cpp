#include "engine/kv_cache.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace fp::engine {

namespace {
const std::vector<int32_t> empty_table;
}

kv_cache::kv_cache(int n_layer, int kv_dim, int block_tokens, int n_blocks)
    : n_layer_(n_layer), kv_dim_(kv_dim), block_tokens_(block_tokens), n_blocks_(n_blocks) {
  // new[] without an initialiser: pages are only touched when a block is first written.
  storage_.reset(new uint16_t[block_bytes() / 2 * static_cast<size_t>(n_blocks)]);
  refcount_.assign(static_cast<size_t>(n_blocks), 0);
  free_.reserve(static_cast<size_t>(n_blocks));
  for (int b = n_blocks - 1; b >= 0; --b) free_.push_back(b);  // low ids first
}

size_t kv_cache::block_bytes() const noexcept {
  return static_cast<size_t>(n_layer_) * 2 * static_cast<size_t>(block_tokens_) *
         static_cast<size_t>(kv_dim_) * sizeof(uint16_t);
}

uint16_t* kv_cache::block_base(int32_t block, int layer, int which) const noexcept {
  size_t per = static_cast<size_t>(block_tokens_) * static_cast<size_t>(kv_dim_);
  return storage_.get() + static_cast<size_t>(block) * (block_bytes() / 2) +
         (static_cast<size_t>(layer) * 2 + static_cast<size_t>(which)) * per;
}

int32_t kv_cache::alloc_block() noexcept {
  if (free_.empty()) return -1;
  int32_t b = free_.back();
  free_.pop_back();
  refcount_[static_cast<size_t>(b)] = 1;
  return b;
}

void kv_cache::release_block(int32_t b) noexcept {
  if (--refcount_[static_cast<size_t>(b)] == 0) free_.push_back(b);
}

int32_t kv_cache::seq_len(int32_t seq) const noexcept {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.len;
}

void kv_cache::seq_remove(int32_t seq) noexcept {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  for (int32_t b : it->second.table) release_block(b);
  seqs_.erase(it);
}

void kv_cache::clear() noexcept {
  while (!seqs_.empty()) seq_remove(seqs_.begin()->first);
}

void kv_cache::seq_truncate(int32_t seq, int32_t n) noexcept {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  auto& s = it->second;
  n = std::clamp(n, 0, s.len);
  size_t keep = static_cast<size_t>((n + block_tokens_ - 1) / block_tokens_);
  while (s.table.size() > keep) {
    release_block(s.table.back());
    s.table.pop_back();
  }
  s.len = n;
}

result<void> kv_cache::seq_fork(int32_t src, int32_t dst) {
  auto it = seqs_.find(src);
  if (it == seqs_.end())
    return make_error(errc::invalid_request, fmt::format("kv_cache: no sequence {}", src));
  if (src == dst) return {};
  seq_remove(dst);
  seq_state copy = seqs_.at(src);
  for (int32_t b : copy.table) ++refcount_[static_cast<size_t>(b)];
  seqs_[dst] = std::move(copy);
  return {};
}

int kv_cache::blocks_needed(int32_t seq, int32_t n_pos) const noexcept {
  auto it = seqs_.find(seq);
  int have = it == seqs_.end() ? 0 : static_cast<int>(it->second.table.size());
  int want = (n_pos + block_tokens_ - 1) / block_tokens_;
  return std::max(0, want - have);
}

result<void> kv_cache::reserve(int32_t seq, int32_t write_from, int32_t n_pos) {
  auto& s = seqs_[seq];
  size_t want = static_cast<size_t>((n_pos + block_tokens_ - 1) / block_tokens_);
  // Shared blocks in the written range need a private copy; new blocks need allocating.
  size_t first_written = static_cast<size_t>(write_from / block_tokens_);
  size_t copies = 0;
  for (size_t i = first_written; i < std::min(want, s.table.size()); ++i)
    if (refcount_[static_cast<size_t>(s.table[i])] > 1) ++copies;
  size_t fresh = want > s.table.size() ? want - s.table.size() : 0;
  if (copies + fresh > free_.size()) {
    if (s.table.empty() && s.len == 0) seqs_.erase(seq);
    return make_error(errc::too_large,
                      fmt::format("KV cache full: need {} more blocks of {} tokens, {} free",
                                  copies + fresh, block_tokens_, free_.size()));
  }
  for (size_t i = first_written; i < std::min(want, s.table.size()); ++i) {
    int32_t b = s.table[i];
    if (refcount_[static_cast<size_t>(b)] > 1) {
      int32_t nb = alloc_block();
      std::memcpy(block_base(nb, 0, 0), block_base(b, 0, 0), block_bytes());
      release_block(b);
      s.table[i] = nb;
    }
  }
  while (s.table.size() < want) s.table.push_back(alloc_block());
  return {};
}

void kv_cache::set_len(int32_t seq, int32_t n) noexcept {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  auto& s = it->second;
  s.len = std::max(0, n);
  size_t keep = static_cast<size_t>((s.len + block_tokens_ - 1) / block_tokens_);
  while (s.table.size() > keep) {  // positions after n (e.g. rejected drafts) are dropped
    release_block(s.table.back());
    s.table.pop_back();
  }
}

uint16_t* kv_cache::k(int layer, int32_t seq, int32_t pos) noexcept {
  const auto& t = seqs_.find(seq)->second.table;
  return block_base(t[static_cast<size_t>(pos / block_tokens_)], layer, 0) +
         static_cast<size_t>(pos % block_tokens_) * static_cast<size_t>(kv_dim_);
}

uint16_t* kv_cache::v(int layer, int32_t seq, int32_t pos) noexcept {
  const auto& t = seqs_.find(seq)->second.table;
  return block_base(t[static_cast<size_t>(pos / block_tokens_)], layer, 1) +
         static_cast<size_t>(pos % block_tokens_) * static_cast<size_t>(kv_dim_);
}

const std::vector<int32_t>& kv_cache::blocks(int32_t seq) const noexcept {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? empty_table : it->second.table;
}

const uint16_t* kv_cache::block_k(int32_t block, int layer) const noexcept {
  return block_base(block, layer, 0);
}
const uint16_t* kv_cache::block_v(int32_t block, int layer) const noexcept {
  return block_base(block, layer, 1);
}

}  // namespace fp::engine
