// The KV cache: F16 keys and values in fixed-size blocks of `block_tokens` positions, addressed
// per sequence through a block table (vLLM's paged attention layout).
//
// A block holds, for every layer, K and V of `block_tokens` consecutive positions of one
// sequence: [layer][k|v][token][kv_dim] u16. Blocks are reference-counted so that a forked
// sequence shares its parent's full blocks (prefix sharing); a shared block is copied before it
// is written (copy on write). Freed blocks go back to a free list, so eviction is "drop a
// sequence" (or, later, drop blocks of a sequence behind its sliding window).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/common.hpp"

namespace fp::engine {

class kv_cache {
 public:
  kv_cache() = default;
  // Memory is reserved (not touched) up front: n_blocks * block_bytes().
  kv_cache(int n_layer, int kv_dim, int block_tokens, int n_blocks);

  int block_tokens() const noexcept { return block_tokens_; }
  int blocks_total() const noexcept { return n_blocks_; }
  int blocks_free() const noexcept { return static_cast<int>(free_.size()); }
  size_t block_bytes() const noexcept;
  size_t bytes_total() const noexcept { return block_bytes() * static_cast<size_t>(n_blocks_); }

  // Sequences. A sequence exists from its first reserve() until seq_remove().
  bool seq_exists(int32_t seq) const noexcept { return seqs_.count(seq) != 0; }
  int32_t seq_len(int32_t seq) const noexcept;  // positions filled (0 if unknown)
  void seq_remove(int32_t seq) noexcept;        // frees its blocks
  void clear() noexcept;
  // Keeps positions [0, n) of `seq` (n <= seq_len); drops the rest.
  void seq_truncate(int32_t seq, int32_t n) noexcept;
  // dst becomes a copy of src (dst is removed first) sharing src's blocks. invalid_request if
  // src does not exist.
  result<void> seq_fork(int32_t src, int32_t dst);

  // Makes positions [0, n_pos) of `seq` writable (allocating blocks, copying shared ones that
  // will be written from position `write_from` on). too_large when the cache is full; then
  // nothing changes.
  result<void> reserve(int32_t seq, int32_t write_from, int32_t n_pos);
  // Sets the filled length after a successful forward pass.
  void set_len(int32_t seq, int32_t n) noexcept;
  // Blocks a batch would need beyond what the sequence has (for admission control).
  int blocks_needed(int32_t seq, int32_t n_pos) const noexcept;

  // Pointers to K / V of (layer, seq, pos): kv_dim u16 values (F16). pos must be reserved.
  uint16_t* k(int layer, int32_t seq, int32_t pos) noexcept;
  uint16_t* v(int layer, int32_t seq, int32_t pos) noexcept;
  // The block table of a sequence (for attention loops); empty if unknown.
  const std::vector<int32_t>& blocks(int32_t seq) const noexcept;
  // Base of the K / V rows of a block for a layer: block_tokens rows of kv_dim.
  const uint16_t* block_k(int32_t block, int layer) const noexcept;
  const uint16_t* block_v(int32_t block, int layer) const noexcept;
  int kv_dim() const noexcept { return kv_dim_; }

 private:
  struct seq_state {
    std::vector<int32_t> table;  // block ids, position p lives in table[p / block_tokens]
    int32_t len = 0;
  };
  uint16_t* block_base(int32_t block, int layer, int which) const noexcept;
  int32_t alloc_block() noexcept;  // -1 if none
  void release_block(int32_t b) noexcept;

  int n_layer_ = 0, kv_dim_ = 0, block_tokens_ = 16, n_blocks_ = 0;
  std::unique_ptr<uint16_t[]> storage_;
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
  std::unordered_map<int32_t, seq_state> seqs_;
};

}  // namespace fp::engine
