// AMX (Advanced Matrix Extensions) prefill path: matrix products of many tokens on BF16 tiles.
// Compiled with -mamx-tile -mamx-bf16 -mavx512bf16 for this file only (CMakeLists.txt); used only
// when dispatch.cpp found AMX-BF16 in cpuid AND the kernel granted the tile-data permission
// (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)), otherwise the AVX-512 VNNI path runs.
//
// Why BF16 and not int8 tiles: Q4_0/Q8_0/Q4_K carry one scale per 32 (or 32-element sub-block)
// weights, and an int8 tile product sums 64 products across two such blocks, so the scales would
// have to be applied after every K=32 step outside the tiles. Dequantising a panel of 32 weight
// rows to BF16 once (its scales folded in) lets the tiles accumulate over the whole row in F32.
// The panel is reused by every token; activations are converted to BF16 once per call. Accuracy:
// BF16 keeps 8 significant bits for both operands (relative rounding 2^-9 each); the int8 path
// quantises activations to 1/254 of a 32-block's largest value, which is coarser for all but the
// largest elements. Tested against an F32 product of the dequantised weights (kernels_test).
//
// Roles: tile A = 16 weight rows x 32 columns (row-major BF16, the dequantised panel); tile B =
// 32 columns x 16 tokens in the VNNI pair layout (activation buffer [cols/2][n_pad][2]); C = 16
// rows x 16 tokens in F32. Register blocking 32 rows x 32 tokens: 2 A + 2 B + 4 C tiles.
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized at -O2 (see kernels_simd_impl.hpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/dispatch.hpp"
#include "engine/quant.hpp"

namespace fp::engine::detail {
namespace {

using namespace quant;

struct alignas(64) tile_config {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

inline void load_config() {
  tile_config c;
  for (int i = 0; i < 8; ++i) c.colsb[i] = 64, c.rows[i] = 16;
  _tile_loadconfig(&c);
}

struct scratch {
  std::vector<uint8_t> buf;
  uint8_t* get(size_t bytes) {
    if (buf.size() < bytes + 64) buf.resize(bytes + 64);
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t{63});
  }
};
thread_local scratch t_panel;

inline float f16s(uint16_t h) { return _cvtsh_ss(h); }

inline void store_bf16(uint16_t* dst, __m512 lo, __m512 hi) {  // 16 + 16 floats -> 32 bf16
  _mm512_storeu_si512(dst, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
}

// One weight row -> cols BF16 values (scales folded in); 32-element chunk k goes to out + k * cs
// (the panel keeps each tile's 16 rows x 32 columns contiguous, see amx_gemm).
void dequant_row_bf16(ggml_type wt, const uint8_t* row, int64_t cols, uint16_t* out, int64_t cs) {
  if (wt == ggml_type::q4_0) {
    const __m512i m4 = _mm512_set1_epi32(0x0F), eight = _mm512_set1_epi32(8);
    const auto* b = reinterpret_cast<const block_q4_0*>(row);
    for (int64_t i = 0; i < cols / qk32; ++i) {
      const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs)));
      const __m512 d = _mm512_set1_ps(f16s(b[i].d));
      const __m512 lo = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(q, m4), eight)), d);
      const __m512 hi = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(q, 4), eight)), d);
      store_bf16(out + i * cs, lo, hi);
    }
  } else if (wt == ggml_type::q8_0) {
    const auto* b = reinterpret_cast<const block_q8_0*>(row);
    for (int64_t i = 0; i < cols / qk32; ++i) {
      const __m512 d = _mm512_set1_ps(f16s(b[i].d));
      const __m512 lo = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs)))), d);
      const __m512 hi = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 16)))), d);
      store_bf16(out + i * cs, lo, hi);
    }
  } else {  // q4_k
    const __m512i m4 = _mm512_set1_epi32(0x0F);
    const auto* b = reinterpret_cast<const block_q4_k*>(row);
    for (int64_t i = 0; i < cols / qk_k; ++i) {
      const float d = f16s(b[i].d), dmin = f16s(b[i].dmin);
      for (int k = 0; k < 4; ++k) {
        uint8_t sc0, m0, sc1, m1;
        scale_min_k4(2 * k, b[i].scales, sc0, m0);
        scale_min_k4(2 * k + 1, b[i].scales, sc1, m1);
        const __m512 s0 = _mm512_set1_ps(d * sc0), o0 = _mm512_set1_ps(dmin * m0);
        const __m512 s1 = _mm512_set1_ps(d * sc1), o1 = _mm512_set1_ps(dmin * m1);
        for (int h = 0; h < 2; ++h) {  // bytes 16h..16h+15 of the pair: elements l = 16h + ...
          const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 32 * k + 16 * h)));
          const __m512 lo = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(q, m4)), s0, o0);
          const __m512 hi = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(q, 4)), s1, o1);
          // sub-block 2k (chunk 8i + 2k): element l; sub-block 2k+1 (chunk 8i + 2k + 1): element l
          uint16_t* base = out + (8 * i + 2 * k) * cs + 16 * h;
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(base), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(lo)));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(base + cs), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(hi)));
        }
      }
    }
  }
}

// 16x16 transpose of 32-bit elements.
inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i a = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), b = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
    const __m512i a2 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD), b2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(a, b, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(a, b, 0xDD);
    r[4 + j] = _mm512_shuffle_i32x4(a2, b2, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(a2, b2, 0xDD);
  }
}

bool amx_supported_type(ggml_type wt, int64_t cols) {
  if (wt == ggml_type::q4_0 || wt == ggml_type::q8_0) return cols % 32 == 0;
  if (wt == ggml_type::q4_k) return cols % qk_k == 0;
  return false;
}

// Token blocks [tb0, tb1) (multiples of 16) of x -> dst[n_pad/16][cols/2][16] u32 pairs (so a B
// tile, 16 pair rows x 16 tokens, is 1 KiB contiguous); tokens at or beyond n_tokens are zeros.
// (A [cols/2][n_pad] layout put the 16 rows of a tile 4 KiB apart: every tile load hit the same
// few cache sets, and the product ran at 150 instead of 500+ GMAC/s.)
void amx_act(const float* x, int64_t ldx, int n_tokens, int64_t cols, int n_pad, int tb0, int tb1, uint16_t* dst) {
  auto* out = reinterpret_cast<uint32_t*>(dst);
  for (int tb = tb0; tb < tb1; tb += 16) {
    for (int64_t kc = 0; kc < cols / 32; ++kc) {
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        const int t = tb + j;
        if (t < n_tokens) {
          const float* p = x + t * ldx + kc * 32;
          r[j] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(p + 16), _mm512_loadu_ps(p)));
        } else {
          r[j] = _mm512_setzero_si512();
        }
      }
      transpose16(r);  // r[kp] = the pairs (2kp, 2kp+1) of the 16 tokens
      for (int kp = 0; kp < 16; ++kp)
        _mm512_storeu_si512(out + ((tb / 16) * (cols / 2) + kc * 16 + kp) * 16, r[kp]);
    }
  }
}

// C tile (16 rows x 16 tokens, row-major) -> y[token][row]: transposed in registers so each
// token's 16 outputs are one 64-byte store (element-wise stores 32 KiB apart made the write-back
// cost more than the tile products).
inline void store_tile(const float* ct, int nrow, int ntok, float* y, int64_t ldy) {
  __m512i r[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(ct + 16 * i);
  transpose16(r);  // r[j] = token j's 16 rows
  const __mmask16 m = static_cast<__mmask16>((1u << nrow) - 1);
  for (int j = 0; j < ntok; ++j) _mm512_mask_storeu_ps(y + j * ldy, m, _mm512_castsi512_ps(r[j]));
}

// Panel layout: [cols/32][2][16 rows][32] BF16 -- tile (chunk kc, rows 16h..16h+15) is 1 KiB
// contiguous. c: 4 tiles of 16 rows x 16 tokens (F32).
template <bool TwoTok>
inline void tile_pass(const uint16_t* panel, int64_t cols, const uint16_t* act, int tt, float* c) {
  _tile_zero(0);
  _tile_zero(1);
  if constexpr (TwoTok) {
    _tile_zero(2);
    _tile_zero(3);
  }
  const int64_t nk = cols / 32;
  const uint16_t* b0 = act + (tt / 16) * cols * 16;  // token block tt: cols/2 rows of 16 pairs
  const uint16_t* b1 = b0 + cols * 16;
  for (int64_t kc = 0; kc < nk; ++kc) {
    _tile_loadd(4, panel + kc * 1024, 64);
    _tile_loadd(5, panel + kc * 1024 + 512, 64);
    _tile_loadd(6, b0 + kc * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 5, 6);
    if constexpr (TwoTok) {
      _tile_loadd(7, b1 + kc * 512, 64);
      _tile_dpbf16ps(2, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, 64);
  _tile_stored(1, c + 256, 64);
  if constexpr (TwoTok) {
    _tile_stored(2, c + 512, 64);
    _tile_stored(3, c + 768, 64);
  }
}

// Rows per dequantised group: as many 32-row panels as fit in ~1 MiB (256 rows at 2048 columns,
// 64 at 8192), so that one 32-token slice of the activations (128-512 KiB) stays in L2 while it
// meets every panel of the group. With one 32-row panel per pass the whole activation matrix
// came from L3 for every 32 rows and the tiles ran at ~170 GMAC/s instead of ~1000.
inline int64_t group_rows(int64_t cols) {
  return std::clamp<int64_t>((int64_t{1} << 20) / (cols * 2) / 32 * 32, 32, 256);
}

void amx_gemm(const weight_view& w, const uint16_t* act, int n_pad, int n_tokens, float* y, int64_t ldy,
              int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  const int64_t ws = w.row_stride ? w.row_stride : type_row_bytes(w.type, cols);
  const int64_t gr = group_rows(cols);
  const int64_t panel_elems = 32 * cols;
  uint8_t* mem = t_panel.get(static_cast<size_t>(gr * cols * 2 + 4096));
  auto* panels = reinterpret_cast<uint16_t*>(mem);
  auto* c = reinterpret_cast<float*>(mem + gr * cols * 2);  // 4 tiles of 16x16 f32
  load_config();
  for (int64_t gb = r0; gb < r1; gb += gr) {
    const int64_t ng = std::min(gr, r1 - gb);  // rows in this group
    const int64_t np = (ng + 31) / 32;          // panels
    for (int64_t i = 0; i < np * 32; ++i) {
      uint16_t* dst = panels + (i / 32) * panel_elems + ((i % 32) / 16) * 512 + (i % 16) * 32;
      if (i < ng) {
        dequant_row_bf16(w.type, static_cast<const uint8_t*>(w.data) + (gb + i) * ws, cols, dst, 1024);
      } else {
        for (int64_t kc = 0; kc < cols / 32; ++kc) std::memset(dst + kc * 1024, 0, 64);
      }
    }
    for (int tt = 0; tt < n_pad; tt += 32) {
      const bool two = tt + 16 < n_pad;
      for (int64_t p = 0; p < np; ++p) {
        const int64_t rb = gb + 32 * p;
        const int64_t nr = std::min<int64_t>(32, gb + ng - rb);
        if (two) tile_pass<true>(panels + p * panel_elems, cols, act, tt, c);
        else tile_pass<false>(panels + p * panel_elems, cols, act, tt, c);
        // c[tile][row][token]: tile 0 rows 0-15 x tokens tt.., 1 rows 16-31, 2/3 the next 16 tokens
        for (int q = 0; q < (two ? 4 : 2); ++q) {
          const int64_t row0 = rb + (q & 1) * 16;
          const int tok0 = tt + (q >> 1) * 16;
          const int nrow = static_cast<int>(std::min<int64_t>(16, rb + nr - row0));
          const int ntok = std::min(16, n_tokens - tok0);
          if (nrow <= 0 || ntok <= 0) continue;  // a half-empty panel or token pair
          float* cq = c + q * 256;
          store_tile(cq, nrow, ntok, y + tok0 * ldy + row0, ldy);
        }
      }
    }
  }
  _tile_release();
}

bool request_amx() noexcept {
  // cpuid leaf 7 subleaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE; AVX512-BF16 is leaf 7 subleaf 1 EAX bit 5.
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  if (!((d >> 22) & 1) || !((d >> 24) & 1)) return false;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  if (!((a >> 5) & 1)) return false;
  // Linux >= 5.16: tile data must be requested per process before the first tile instruction.
  constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
  return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
}

}  // namespace

bool amx_available() noexcept {
  static const bool ok = isa_supported(isa::avx512) && request_amx();
  return ok;
}

const amx_ops& amx_table() noexcept {
  static const amx_ops t{amx_supported_type, amx_act, amx_gemm};
  return t;
}

}  // namespace fp::engine::detail
