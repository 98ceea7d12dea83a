// Block layouts of the ggml quantisation formats (exactly as GGUF stores them) and the
// engine-internal quantised-activation layouts used by the integer dot products.
// Private to src/engine (kernels, tests, make-model); other components use kernels.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/kernels.hpp"

namespace fp::engine::quant {

inline constexpr int qk32 = 32;    // elements per Q4_0 / Q8_0 block
inline constexpr int qk_k = 256;   // elements per K-quant super-block

// Q4_0: x = d * (q - 8), q in [0, 15]; element j in low nibble of qs[j], j+16 in the high nibble.
struct block_q4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];
};
static_assert(sizeof(block_q4_0) == 18);

// Q8_0: x = d * q
struct block_q8_0 {
  uint16_t d;       // f16 scale
  int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34);

// Q4_K: 8 sub-blocks of 32; x = d * sc[j] * q - dmin * m[j], q in [0, 15], 6-bit sc/m packed in
// scales[12] (see scale_min_k4). qs[32*k + l]: low nibble = sub-block 2k, high = 2k+1, element l.
struct block_q4_k {
  uint16_t d;        // f16 super-block scale of the scales
  uint16_t dmin;     // f16 super-block scale of the mins
  uint8_t scales[12];
  uint8_t qs[128];
};
static_assert(sizeof(block_q4_k) == 144);

// Q5_K: as Q4_K plus a fifth bit: bit (2k) / (2k+1) of qh[l] is the high bit of element l of
// sub-block 2k / 2k+1.
struct block_q5_k {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(block_q5_k) == 176);

// Q6_K: 16 sub-blocks of 16; x = d * scales[j] * (q - 32), q in [0, 63] (4 low bits in ql,
// 2 high bits in qh). Per 128-element half h: ql[64h + l] low nibble -> element l, ql[64h+32+l]
// low -> l+32, ql[64h+l] high -> l+64, ql[64h+32+l] high -> l+96; qh[32h+l] bits 0-1/2-3/4-5/6-7
// -> elements l, l+32, l+64, l+96.
struct block_q6_k {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(block_q6_k) == 210);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) noexcept {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// ---- quantised activations ----------------------------------------------------------------------
// One layout per weight family, shared by every variant (so variants are tested on identical
// inputs). Per token row, 64-byte aligned:
//   act32  (Q4_0, Q8_0 weights): int8 qs[cols] | float d[nb] | float ds[nb]      nb = cols/32
//          x ~= d[b] * qs[32b + i];  ds[b] = d[b] * sum_i qs[32b + i]
//   act256 (K-quant weights):   int8 qs[cols] | float d[nb] | int16 bsums[cols/16]  nb = cols/256
//          x ~= d[b] * qs[256b + i];  bsums[k] = sum of qs[16k .. 16k+15]
enum class act_kind { none, q8_32, q8_256 };
act_kind act_kind_for(ggml_type weight) noexcept;
// Bytes of one quantised token row (a multiple of 64); 0 for act_kind::none.
int64_t act_row_bytes(act_kind k, int64_t cols) noexcept;

struct act32_view {
  const int8_t* qs;
  const float* d;
  const float* ds;
};
inline act32_view act32_at(const void* row, int64_t cols) noexcept {
  auto* p = static_cast<const uint8_t*>(row);
  const int64_t nb = cols / qk32;
  return {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + cols),
          reinterpret_cast<const float*>(p + cols + 4 * nb)};
}
struct act256_view {
  const int8_t* qs;
  const float* d;
  const int16_t* bsums;
};
inline act256_view act256_at(const void* row, int64_t cols) noexcept {
  auto* p = static_cast<const uint8_t*>(row);
  const int64_t nb = cols / qk_k;
  return {reinterpret_cast<const int8_t*>(p), reinterpret_cast<const float*>(p + cols),
          reinterpret_cast<const int16_t*>(p + cols + 4 * nb)};
}

// Reference activation quantisers (round to nearest, scale = amax / 127).
void quantize_act32_ref(const float* x, void* row, int64_t cols) noexcept;
void quantize_act256_ref(const float* x, void* row, int64_t cols) noexcept;

// Scalar f16 conversion usable from any translation unit (no SIMD).
float f16_to_f32_scalar(uint16_t h) noexcept;

}  // namespace fp::engine::quant
