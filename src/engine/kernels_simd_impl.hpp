// The x86 SIMD kernels, written once and compiled twice: kernels_avx2.cpp (AVX2+FMA+F16C) and
// kernels_avx512.cpp (adds AVX-512 F/BW/VL + VNNI: FP_SIMD_VNNI=1 switches the integer dot
// products to vpdpbusd / vpdpwssd). Included ONLY by those two files; everything here is in an
// anonymous namespace so the two compilations never share (ODR-merge) a function.
//
// Matrix products tile over FP_TILE tokens: each weight block is unpacked once and used for every
// token of the tile, so prefill reads the weights n_tokens / FP_TILE times instead of n_tokens.
#pragma once

// GCC 12's AVX-512 headers implement gathers and extracts with a self-initialised "undefined"
// vector, which -W(maybe-)uninitialized reports at -O2 (a known false positive). This header is
// included only by the two SIMD translation units.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <vector>

#include "engine/dispatch.hpp"
#include "engine/quant.hpp"

#ifndef FP_SIMD_VNNI
#error "define FP_SIMD_VNNI before including kernels_simd_impl.hpp"
#endif

namespace fp::engine::detail {
namespace {

using namespace quant;

constexpr int k_tile = FP_SIMD_VNNI ? 8 : 4;  // tokens per weight pass (zmm leaves more registers)

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#if FP_SIMD_VNNI
// (not _mm512_reduce_add_ps: GCC 12's header version trips -Wmaybe-uninitialized at -O2)
inline float hsum512(__m512 v) {
  return hsum(_mm256_add_ps(_mm512_castps512_ps256(v),
                            _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
#endif
inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
inline float f16s(uint16_t h) { return _cvtsh_ss(h); }

// Sum over groups of 4 of u8 * s8 products into 8 int32 lanes (w unsigned, a signed).
inline __m256i dot_u8s8(__m256i w, __m256i a) {
#if FP_SIMD_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a);
#else
  const __m256i p16 = _mm256_maddubs_epi16(w, a);  // |15*127*2| or |128*127*2| fit in int16
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
#endif
}
// acc + sum over pairs of int16 p * int16 s (8 int32 lanes).
inline __m256i madd_acc(__m256i acc, __m256i p, __m256i s) {
#if FP_SIMD_VNNI
  return _mm256_dpwssd_epi32(acc, p, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
#endif
}

// ---- Q4_0 x act32 -------------------------------------------------------------------------------
template <int T>
void gemm_q4_0(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
               int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  act32_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act32_at(act + t * act_stride, cols);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t r = r0; r < r1; ++r) {
    auto* w = reinterpret_cast<const block_q4_0*>(wbase + r * wstride);
    __m256 acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), corr[t] = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
      const __m256i wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), m4);
      const float dw = f16s(w[b].d);
      for (int t = 0; t < T; ++t) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + b * 32));
        const __m256 p = _mm256_cvtepi32_ps(dot_u8s8(wq, av));
        acc[t] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * a[t].d[b]), acc[t]);
        corr[t] += dw * a[t].ds[b];
      }
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[t]) - 8.0f * corr[t];
  }
}

// ---- Q8_0 x act32 -------------------------------------------------------------------------------
template <int T>
void gemm_q8_0(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
               int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  act32_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act32_at(act + t * act_stride, cols);
  for (int64_t r = r0; r < r1; ++r) {
    auto* w = reinterpret_cast<const block_q8_0*>(wbase + r * wstride);
    __m256 acc[T];
    float corr[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), corr[t] = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs));
      const float dw = f16s(w[b].d);
#if FP_SIMD_VNNI
      const __m256i wu = _mm256_xor_si256(wq, _mm256_set1_epi8(static_cast<char>(0x80)));  // w+128
#else
      const __m256i wabs = _mm256_sign_epi8(wq, wq);
#endif
      for (int t = 0; t < T; ++t) {
        const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].qs + b * 32));
#if FP_SIMD_VNNI
        const __m256i d = dot_u8s8(wu, av);
        corr[t] += dw * a[t].ds[b];
#else
        const __m256i d = dot_u8s8(wabs, _mm256_sign_epi8(av, wq));
#endif
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(dw * a[t].d[b]), acc[t]);
      }
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[t]) - 128.0f * corr[t];
  }
}

// ---- K-quants x act256 --------------------------------------------------------------------------
// Unpacks the 8 (scale, min) pairs of a Q4_K/Q5_K super-block: sc16[j] = set1_epi16(sc_j), mins
// as 16 int16 lanes (lane 2j, 2j+1 = m_j) to multiply with the 16 bsums.
inline void unpack_scales_k4(const uint8_t* scales, __m256i* sc16, __m256i& mins) {
  alignas(32) int16_t m16[16];
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    scale_min_k4(j, scales, sc, m);
    sc16[j] = _mm256_set1_epi16(sc);
    m16[2 * j] = m16[2 * j + 1] = m;
  }
  mins = _mm256_load_si256(reinterpret_cast<const __m256i*>(m16));
}

template <int T, bool Q5>
void gemm_qk45(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
               int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  act256_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act256_at(act + t * act_stride, cols);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = wbase + r * wstride;
    __m256 acc[T], accm[T];
    for (int t = 0; t < T; ++t) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* qs;
      const uint8_t* scales;
      uint16_t dh, dminh;
      __m256i qh{};
      if constexpr (Q5) {
        auto* w = reinterpret_cast<const block_q5_k*>(row) + b;
        qs = w->qs, scales = w->scales, dh = w->d, dminh = w->dmin;
        qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w->qh));
      } else {
        auto* w = reinterpret_cast<const block_q4_k*>(row) + b;
        qs = w->qs, scales = w->scales, dh = w->d, dminh = w->dmin;
      }
      __m256i sc16[8], mins;
      unpack_scales_k4(scales, sc16, mins);
      __m256i wq[8];
      for (int k = 0; k < 4; ++k) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * k));
        wq[2 * k] = _mm256_and_si256(raw, m4);
        wq[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      }
      if constexpr (Q5) {
        for (int j = 0; j < 8; ++j) {
          const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << j));
          const __m256i hb = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
          wq[j] = _mm256_or_si256(wq[j], _mm256_and_si256(hb, _mm256_set1_epi8(16)));
        }
      }
      const float d = f16s(dh), dmin = f16s(dminh);
      for (int t = 0; t < T; ++t) {
        const int8_t* q = a[t].qs + b * qk_k;
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * j));
          isum = madd_acc(isum, _mm256_maddubs_epi16(wq[j], av), sc16[j]);
        }
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].bsums + b * 16));
        const __m256i msum = _mm256_madd_epi16(bs, mins);
        const float dx = a[t].d[b];
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * dx), acc[t]);
        accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), accm[t]);
      }
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(_mm256_sub_ps(acc[t], accm[t]));
  }
}

template <int T>
void gemm_q6_k(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
               int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  act256_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act256_at(act + t * act_stride, cols);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  for (int64_t r = r0; r < r1; ++r) {
    auto* w = reinterpret_cast<const block_q6_k*>(wbase + r * wstride);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m256i wq[8], sc[8];
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qh + 32 * h));
        const auto hi = [&](int shift) {
          return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, shift), m3), 4);
        };
        wq[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), hi(0));
        wq[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), hi(2));
        wq[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), hi(4));
        wq[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), hi(6));
        for (int g = 0; g < 4; ++g) {
          const int s = 8 * h + 2 * g;
          sc[4 * h + g] = _mm256_set_m128i(_mm_set1_epi16(w[b].scales[s + 1]), _mm_set1_epi16(w[b].scales[s]));
        }
      }
      const __m256i sc_all = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].scales)));
      const float d = f16s(w[b].d);
      for (int t = 0; t < T; ++t) {
        const int8_t* q = a[t].qs + b * qk_k;
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * j));
          isum = madd_acc(isum, _mm256_maddubs_epi16(wq[j], av), sc[j]);
        }
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].bsums + b * 16));
        const __m256i corr = _mm256_madd_epi16(bs, sc_all);  // sum sc_j * bsum_j
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(corr, 5));  // - 32 * ...
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * a[t].d[b]), acc[t]);
      }
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum(acc[t]);
  }
}


#if FP_SIMD_VNNI
// ---- AVX-512 kernels (zmm): two 32-blocks or one Q4_K sub-block pair per instruction -----------
// The block scales of 16 consecutive Q4_0/Q8_0 blocks are gathered and converted at once; the
// per-lane scale of a block pair is a permute of (weight scale x activation scale).
// Decode streams every weight once from DRAM; the hardware prefetcher alone left the 1-2 token
// kernels well below a plain read's bandwidth on this (virtualised, contended) machine. Each step
// asks for the lines `prefetch_distance()` bytes ahead of the bytes it is about to use (rows are
// contiguous, so this runs into the next rows; prefetching past the end is harmless). Measured
// on the 1B models, 2 threads, generation tok/s at distance 0 / 1024 / 2048 / 3072 bytes:
// Q4_0 18.8-20.4 / 23.5-23.9 / 23.6-26.5 / -, Q4_K 9.8-14.9 / 21.0-21.3 / 22.1-22.9 / 22.3-22.6,
// Q8_0 12.5-12.8 / 13.8-14.1 / 12.5-13.4 / 12.7-13.1. FASTPATH_PREFETCH=<bytes> overrides (0: off).
inline int64_t prefetch_distance() {
  static const int64_t d = [] {
    const char* e = std::getenv("FASTPATH_PREFETCH");
    return e ? std::atol(e) : int64_t{2048};
  }();
  return d;
}
inline void prefetch_ahead(const uint8_t* p, int64_t bytes) {
  const int64_t d = prefetch_distance();
  if (d <= 0) return;
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + d + o), _MM_HINT_T0);
}

inline __m512i pair_index(int p) {  // lanes 0-7 -> 2p, lanes 8-15 -> 2p+1
  return _mm512_set_epi32(2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1,
                          2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p, 2 * p);
}

template <int T, bool Q4>
void gemm_q32_512(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
                  int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  constexpr int bsz = Q4 ? 18 : 34;  // bytes per block
  act32_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act32_at(act + t * act_stride, cols);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i x80 = _mm512_set1_epi8(static_cast<char>(0x80));
  // per-128-bit-lane word shift counts 0,4,0,4: [b0, b0, b1, b1] -> [b0 lo, b0 hi, b1 lo, b1 hi]
  const __m512i shifts = _mm512_set_epi32(0x40004, 0x40004, 0x40004, 0x40004, 0, 0, 0, 0,
                                          0x40004, 0x40004, 0x40004, 0x40004, 0, 0, 0, 0);
  const __m512i gidx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(bsz));
  __m512i pidx[8];
  for (int p = 0; p < 8; ++p) pidx[p] = pair_index(p);
  const int64_t ng = nb / 16;  // full groups of 16 blocks; the rest goes through the ymm kernel
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = wbase + r * wstride;
    // With few tokens the fma chain of one accumulator is the bottleneck: split it by pair parity.
    constexpr int na = T <= 2 ? 2 : 1;
    __m512 acc[T][na], corr[T];
    for (int t = 0; t < T; ++t) {
      corr[t] = _mm512_setzero_ps();
      for (int i = 0; i < na; ++i) acc[t][i] = _mm512_setzero_ps();
    }
    for (int64_t g = 0; g < ng; ++g) {
      const uint8_t* gb = row + g * 16 * bsz;
      if constexpr (T <= 2) prefetch_ahead(gb, 16 * bsz);
      const __m512i raw_d = _mm512_i32gather_epi32(gidx, gb, 1);
      const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw_d));
      __m512 prod[T];
      for (int t = 0; t < T; ++t) {
        const __m512 dx = _mm512_loadu_ps(a[t].d + g * 16);
        prod[t] = _mm512_mul_ps(dw, dx);
        if constexpr (Q4) corr[t] = _mm512_fmadd_ps(dw, _mm512_loadu_ps(a[t].ds + g * 16), corr[t]);
        else corr[t] = _mm512_fmadd_ps(dw, _mm512_loadu_ps(a[t].ds + g * 16), corr[t]);
      }
      for (int p = 0; p < 8; ++p) {
        const uint8_t* b0 = gb + (2 * p) * bsz + 2;
        __m512i z;
        if constexpr (Q4) {
          const __m256i l = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0)));
          const __m256i h = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + bsz)));
          z = _mm512_and_si512(_mm512_srlv_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1), shifts), m4);
        } else {
          const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0));
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + bsz));
          z = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1), x80);
        }
        for (int t = 0; t < T; ++t) {
          const __m512i av = _mm512_loadu_si512(a[t].qs + (g * 16 + 2 * p) * 32);
          const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), z, av));
          acc[t][p % na] = _mm512_fmadd_ps(dot, _mm512_permutexvar_ps(pidx[p], prod[t]), acc[t][p % na]);
        }
      }
    }
    const float off = Q4 ? 8.0f : 128.0f;
    float tail[T] = {};
    if (ng * 16 < nb) {  // leftover blocks: the ymm kernel on a view of them
      const int64_t done = ng * 16;
      for (int t = 0; t < T; ++t) {
        act32_view v = a[t];
        v.qs += done * 32, v.d += done, v.ds += done;
        __m256 s = _mm256_setzero_ps();
        float c = 0;
        for (int64_t b = done; b < nb; ++b) {
          const uint8_t* blk = row + b * bsz;
          const float dwb = f16s(*reinterpret_cast<const uint16_t*>(blk));
          __m256i wq;
          if constexpr (Q4) {
            const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
            wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F));
          } else {
            wq = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)),
                                  _mm256_set1_epi8(static_cast<char>(0x80)));
          }
          const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.qs + (b - done) * 32));
          s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_u8s8(wq, av)), _mm256_set1_ps(dwb * v.d[b - done]), s);
          c += dwb * v.ds[b - done];
        }
        tail[t] = hsum(s) - off * c;
      }
    }
    for (int t = 0; t < T; ++t) {
      __m512 sum = acc[t][0];
      if constexpr (na == 2) sum = _mm512_add_ps(sum, acc[t][na - 1]);
      y[t * ldy + r] = hsum512(sum) - off * hsum512(corr[t]) + tail[t];
    }
  }
}


// ---- AVX-512 prefill: weights repacked once per 16-row block, tokens streamed through --------
// Layout of a "group" (16 consecutive 32-blocks = 512 elements) for both weights and activations:
// 8 vectors of 64 bytes; vector s, 32-bit lane j holds elements 4s..4s+3 of block j. One vpdpbusd
// then adds 4 products of each of 16 blocks into that block's own lane, so a whole group needs 8
// vpdpbusd, one conversion and one fma with (weight scale x activation scale) per token and row:
// no per-block shuffles or reductions.
bool prefill_supported(ggml_type wt, int64_t cols) {
  return (wt == ggml_type::q4_0 || wt == ggml_type::q8_0 || wt == ggml_type::q4_k) && cols % 512 == 0;
}

// Activation row (act_row_bytes(q8_32, cols) bytes): qs in group layout | dx[nb] | ox[nb], nb =
// cols/32: per 32-block activation scale, and the term the weight's offset multiplies:
//   Q4_0 / Q8_0: ox = off * d * sum(q)  (off = 8 / 128: the weights are stored unsigned)
//   Q4_K:        ox = d * sum(q)        (times dmin * m of the weight sub-block)
void prefill_act(ggml_type wt, const void* src, void* dst, int64_t cols) {
  const int64_t nb = cols / qk32;
  auto* qs = static_cast<int8_t*>(dst);
  auto* d = reinterpret_cast<float*>(qs + cols);
  float* ds = d + nb;
  const __m512i idx = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
  if (wt == ggml_type::q4_k) {
    const auto a = act256_at(src, cols);
    for (int64_t g = 0; g < nb / 16; ++g)
      for (int s = 0; s < 8; ++s)
        _mm512_storeu_si512(qs + g * 512 + 64 * s,
                            _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(s)), a.qs + g * 512, 4));
    for (int64_t b = 0; b < nb; ++b) {
      const float dx = a.d[b / 8];
      d[b] = dx;
      ds[b] = dx * static_cast<float>(a.bsums[2 * b] + a.bsums[2 * b + 1]);
    }
    return;
  }
  const auto a = act32_at(src, cols);
  for (int64_t g = 0; g < nb / 16; ++g)
    for (int s = 0; s < 8; ++s)
      _mm512_storeu_si512(qs + g * 512 + 64 * s,
                          _mm512_i32gather_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(s)), a.qs + g * 512, 4));
  const float off = wt == ggml_type::q4_0 ? 8.0f : 128.0f;
  for (int64_t b = 0; b < nb; ++b) d[b] = a.d[b], ds[b] = off * a.ds[b];
}

// One row of weights -> group layout (unsigned bytes: Q4_0 / Q4_K as 0..15, Q8_0 as q+128), the
// per-32-block scale dw and the factor om of the activation offset term (Q4_0/Q8_0: dw; Q4_K:
// dmin * m).
void prefill_repack_row(ggml_type wt, const uint8_t* row, int64_t nb, uint8_t* wq, float* dw, float* om) {
  if (wt == ggml_type::q4_k) {
    const __m512i j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    // sub-block j of a group: super-block j/8, qs bytes 32*((j%8)/2), nibble j%2
    const __m512i off = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_srli_epi32(j, 3), _mm512_set1_epi32(144)),
        _mm512_add_epi32(_mm512_set1_epi32(16), _mm512_slli_epi32(_mm512_srli_epi32(_mm512_and_si512(j, _mm512_set1_epi32(7)), 1), 5)));
    const __m512i shift = _mm512_slli_epi32(_mm512_and_si512(j, _mm512_set1_epi32(1)), 2);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t g = 0; g < nb / 16; ++g) {
      const uint8_t* gb = row + g * 2 * 144;
      for (int s = 0; s < 8; ++s) {
        const __m512i v = _mm512_i32gather_epi32(_mm512_add_epi32(off, _mm512_set1_epi32(4 * s)), gb, 1);
        _mm512_storeu_si512(wq + g * 512 + 64 * s, _mm512_and_si512(_mm512_srlv_epi32(v, shift), m4));
      }
      for (int h = 0; h < 2; ++h) {
        auto* blk = reinterpret_cast<const block_q4_k*>(gb) + h;
        const float d = f16s(blk->d), dmin = f16s(blk->dmin);
        for (int k = 0; k < 8; ++k) {
          uint8_t sc, m;
          scale_min_k4(k, blk->scales, sc, m);
          dw[g * 16 + h * 8 + k] = d * sc;
          om[g * 16 + h * 8 + k] = dmin * m;
        }
      }
    }
    return;
  }
  const bool q4 = wt == ggml_type::q4_0;
  const int bsz = q4 ? 18 : 34;
  const __m512i j = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i base = _mm512_mullo_epi32(j, _mm512_set1_epi32(bsz));
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i x80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int64_t g = 0; g < nb / 16; ++g) {
    const uint8_t* gb = row + g * 16 * bsz;
    uint8_t* out = wq + g * 512;
    if (q4) {
      for (int s = 0; s < 4; ++s) {
        const __m512i v = _mm512_i32gather_epi32(_mm512_add_epi32(base, _mm512_set1_epi32(2 + 4 * s)), gb, 1);
        _mm512_storeu_si512(out + 64 * s, _mm512_and_si512(v, m4));
        _mm512_storeu_si512(out + 64 * (s + 4), _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
      }
    } else {
      for (int s = 0; s < 8; ++s) {
        const __m512i v = _mm512_i32gather_epi32(_mm512_add_epi32(base, _mm512_set1_epi32(2 + 4 * s)), gb, 1);
        _mm512_storeu_si512(out + 64 * s, _mm512_xor_si512(v, x80));
      }
    }
    const __m512i raw_d = _mm512_i32gather_epi32(base, gb, 1);
    const __m512 dv = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw_d));
    _mm512_storeu_ps(dw + g * 16, dv);
    _mm512_storeu_ps(om + g * 16, dv);
  }
}

struct prefill_scratch {
  std::vector<uint8_t> buf;
  uint8_t* get(size_t bytes) {
    if (buf.size() < bytes + 64) buf.resize(bytes + 64);
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t{63});
  }
};
thread_local prefill_scratch t_prefill;

// 2 rows x TT tokens over all groups. wq/dw: the two repacked rows; act rows in group layout.
template <int TT>
inline void prefill_tile(const uint8_t* wq0, const uint8_t* wq1, const float* dw0, const float* dw1,
                         const float* om0, const float* om1, const uint8_t* act, int64_t act_stride, int64_t cols, float* y, int64_t ldy,
                         int64_t r, bool two_rows) {
  const int64_t ng = cols / 512;
  const int64_t nb = cols / qk32;
  __m512 acc0[TT], acc1[TT];
  const int8_t* aq[TT];
  const float* ad[TT];
  const float* ads[TT];
  for (int t = 0; t < TT; ++t) {
    acc0[t] = acc1[t] = _mm512_setzero_ps();
    aq[t] = reinterpret_cast<const int8_t*>(act + t * act_stride);
    ad[t] = reinterpret_cast<const float*>(act + t * act_stride + cols);
    ads[t] = ad[t] + nb;
  }
  for (int64_t g = 0; g < ng; ++g) {
    __m512i i0[TT], i1[TT];
    for (int t = 0; t < TT; ++t) i0[t] = i1[t] = _mm512_setzero_si512();
    for (int s = 0; s < 8; ++s) {
      const __m512i w0 = _mm512_load_si512(wq0 + g * 512 + 64 * s);
      const __m512i w1 = _mm512_load_si512(wq1 + g * 512 + 64 * s);
      for (int t = 0; t < TT; ++t) {
        const __m512i av = _mm512_loadu_si512(aq[t] + g * 512 + 64 * s);
        i0[t] = _mm512_dpbusd_epi32(i0[t], w0, av);
        i1[t] = _mm512_dpbusd_epi32(i1[t], w1, av);
      }
    }
    const __m512 d0 = _mm512_load_ps(dw0 + g * 16), d1 = _mm512_load_ps(dw1 + g * 16);
    const __m512 o0 = _mm512_load_ps(om0 + g * 16), o1 = _mm512_load_ps(om1 + g * 16);
    for (int t = 0; t < TT; ++t) {
      const __m512 dx = _mm512_loadu_ps(ad[t] + g * 16);
      const __m512 dsx = _mm512_loadu_ps(ads[t] + g * 16);
      acc0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(d0, dx), acc0[t]);
      acc0[t] = _mm512_fnmadd_ps(o0, dsx, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(d1, dx), acc1[t]);
      acc1[t] = _mm512_fnmadd_ps(o1, dsx, acc1[t]);
    }
  }
  for (int t = 0; t < TT; ++t) {
    y[t * ldy + r] = hsum512(acc0[t]);
    if (two_rows) y[t * ldy + r + 1] = hsum512(acc1[t]);
  }
}

void prefill_gemm(const weight_view& w, const void* act, int64_t act_stride, int n_tokens, float* y,
                  int64_t ldy, int64_t r0, int64_t r1) {
  constexpr int64_t rb = 16;  // rows repacked at a time
  const int64_t nb = w.cols / qk32;
  const int64_t ws = w.row_stride ? w.row_stride : type_row_bytes(w.type, w.cols);
  const size_t wq_bytes = static_cast<size_t>(rb * w.cols), dw_bytes = static_cast<size_t>(rb * nb * 4);
  uint8_t* wq = t_prefill.get(wq_bytes + 2 * dw_bytes);
  auto* dw = reinterpret_cast<float*>(wq + wq_bytes);
  float* om = dw + rb * nb;
  auto* ab = static_cast<const uint8_t*>(act);
  for (int64_t rbeg = r0; rbeg < r1; rbeg += rb) {
    const int64_t nr = std::min(rb, r1 - rbeg);
    for (int64_t i = 0; i < nr; ++i)
      prefill_repack_row(w.type, static_cast<const uint8_t*>(w.data) + (rbeg + i) * ws, nb, wq + i * w.cols,
                         dw + i * nb, om + i * nb);
    int t = 0;
    for (; t + 4 <= n_tokens; t += 4)
      for (int64_t i = 0; i < nr; i += 2) {
        const int64_t i1 = std::min(i + 1, nr - 1);
        prefill_tile<4>(wq + i * w.cols, wq + i1 * w.cols, dw + i * nb, dw + i1 * nb, om + i * nb, om + i1 * nb, ab + t * act_stride,
                        act_stride, w.cols, y + t * ldy, ldy, rbeg + i, i + 1 < nr);
      }
    for (; t < n_tokens; ++t)
      for (int64_t i = 0; i < nr; i += 2) {
        const int64_t i1 = std::min(i + 1, nr - 1);
        prefill_tile<1>(wq + i * w.cols, wq + i1 * w.cols, dw + i * nb, dw + i1 * nb, om + i * nb, om + i1 * nb, ab + t * act_stride,
                        act_stride, w.cols, y + t * ldy, ldy, rbeg + i, i + 1 < nr);
      }
  }
}

// Q4_K: 6-bit scales/mins of a super-block unpacked with 32-bit word operations.
inline void scales_mins_k4(const uint8_t* q, uint64_t& sc8, uint64_t& m8) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, q, 4), std::memcpy(&w1, q + 4, 4), std::memcpy(&w2, q + 8, 4);
  const uint32_t sc_lo = w0 & 0x3f3f3f3fu, m_lo = w1 & 0x3f3f3f3fu;
  const uint32_t sc_hi = (w2 & 0x0f0f0f0fu) | (((w0 >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((w2 >> 4) & 0x0f0f0f0fu) | (((w1 >> 6) & 0x03030303u) << 4);
  sc8 = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  m8 = m_lo | (static_cast<uint64_t>(m_hi) << 32);
}

template <int T>
void gemm_q4_k_512(const uint8_t* wbase, int64_t wstride, int64_t nb, const uint8_t* act,
                   int64_t act_stride, int64_t cols, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  act256_view a[T];
  for (int t = 0; t < T; ++t) a[t] = act256_at(act + t * act_stride, cols);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i shifts = _mm512_set_epi32(0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004, 0x40004,
                                          0, 0, 0, 0, 0, 0, 0, 0);
  __m512i kidx[4];  // words 0-15 -> sub-block 2k, 16-31 -> 2k+1
  for (int k = 0; k < 4; ++k)
    kidx[k] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<short>(2 * k))),
                                 _mm256_set1_epi16(static_cast<short>(2 * k + 1)), 1);
  for (int64_t r = r0; r < r1; ++r) {
    auto* w = reinterpret_cast<const block_q4_k*>(wbase + r * wstride);
    __m512 acc[T];
    __m256 accm[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps(), accm[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      if constexpr (T <= 2) prefetch_ahead(reinterpret_cast<const uint8_t*>(w + b), sizeof(block_q4_k));
      uint64_t sc8, m8;
      scales_mins_k4(w[b].scales, sc8, m8);
      const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(sc8))));
      const __m128i mb = _mm_cvtsi64_si128(static_cast<long long>(m8));
      const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mb, mb));
      __m512i z[4], sc[4];
      for (int k = 0; k < 4; ++k) {
        // a broadcasting load puts the 32 bytes in both halves without a shuffle
        const __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs + 32 * k)));
        z[k] = _mm512_and_si512(_mm512_srlv_epi16(raw, shifts), m4);
        sc[k] = _mm512_permutexvar_epi16(kidx[k], sc16);
      }
      const float d = f16s(w[b].d), dmin = f16s(w[b].dmin);
      for (int t = 0; t < T; ++t) {
        const int8_t* q = a[t].qs + b * qk_k;
        __m512i i0 = _mm512_setzero_si512(), i1 = _mm512_setzero_si512();  // two chains
        i0 = _mm512_dpwssd_epi32(i0, _mm512_maddubs_epi16(z[0], _mm512_loadu_si512(q)), sc[0]);
        i1 = _mm512_dpwssd_epi32(i1, _mm512_maddubs_epi16(z[1], _mm512_loadu_si512(q + 64)), sc[1]);
        i0 = _mm512_dpwssd_epi32(i0, _mm512_maddubs_epi16(z[2], _mm512_loadu_si512(q + 128)), sc[2]);
        i1 = _mm512_dpwssd_epi32(i1, _mm512_maddubs_epi16(z[3], _mm512_loadu_si512(q + 192)), sc[3]);
        const __m512i isum = _mm512_add_epi32(i0, i1);
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[t].bsums + b * 16));
        const float dx = a[t].d[b];
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dx), acc[t]);
        accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins)), _mm256_set1_ps(dmin * dx), accm[t]);
      }
    }
    for (int t = 0; t < T; ++t) y[t * ldy + r] = hsum512(acc[t]) - hsum(accm[t]);
  }
}
#endif

// ---- float weights ------------------------------------------------------------------------------
template <ggml_type WT>
inline __m256 load8(const void* p, int64_t i) {
  if constexpr (WT == ggml_type::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (WT == ggml_type::f16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
}
template <ggml_type WT>
inline float load1(const void* p, int64_t i) {
  if constexpr (WT == ggml_type::f32) return static_cast<const float*>(p)[i];
  else if constexpr (WT == ggml_type::f16) return f16s(static_cast<const uint16_t*>(p)[i]);
  else return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
}

template <int T, ggml_type WT>
void gemm_float(const uint8_t* wbase, int64_t wstride, const float* x, int64_t ldx, int64_t cols,
                float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t n8 = cols / 8 * 8;
  for (int64_t r = r0; r < r1; ++r) {
    const void* w = wbase + r * wstride;
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256 wv = load8<WT>(w, i);
      for (int t = 0; t < T; ++t) acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + i), acc[t]);
    }
    for (int t = 0; t < T; ++t) {
      float s = hsum(acc[t]);
      for (int64_t i = n8; i < cols; ++i) s += load1<WT>(w, i) * x[t * ldx + i];
      y[t * ldy + r] = s;
    }
  }
}

// Dispatch on the token tile size T (k_tile, then the remainder).
template <int T>
void gemm_t(const weight_view& w, const void* act, int64_t act_stride, float* y, int64_t ldy,
            int64_t r0, int64_t r1) {
  const int64_t ws = w.row_stride ? w.row_stride : type_row_bytes(w.type, w.cols);
  auto* wb = static_cast<const uint8_t*>(w.data);
  auto* ab = static_cast<const uint8_t*>(act);
  switch (w.type) {
#if FP_SIMD_VNNI
    case ggml_type::q4_0: gemm_q32_512<T, true>(wb, ws, w.cols / qk32, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::q8_0: gemm_q32_512<T, false>(wb, ws, w.cols / qk32, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::q4_k: gemm_q4_k_512<T>(wb, ws, w.cols / qk_k, ab, act_stride, w.cols, y, ldy, r0, r1); break;
#else
    case ggml_type::q4_0: gemm_q4_0<T>(wb, ws, w.cols / qk32, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::q8_0: gemm_q8_0<T>(wb, ws, w.cols / qk32, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::q4_k: gemm_qk45<T, false>(wb, ws, w.cols / qk_k, ab, act_stride, w.cols, y, ldy, r0, r1); break;
#endif
    case ggml_type::q5_k: gemm_qk45<T, true>(wb, ws, w.cols / qk_k, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::q6_k: gemm_q6_k<T>(wb, ws, w.cols / qk_k, ab, act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::f32: gemm_float<T, ggml_type::f32>(wb, ws, static_cast<const float*>(act), act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::f16: gemm_float<T, ggml_type::f16>(wb, ws, static_cast<const float*>(act), act_stride, w.cols, y, ldy, r0, r1); break;
    case ggml_type::bf16: gemm_float<T, ggml_type::bf16>(wb, ws, static_cast<const float*>(act), act_stride, w.cols, y, ldy, r0, r1); break;
    default: break;
  }
}

void gemm(const weight_view& w, const void* act, int64_t act_stride, int n_tokens, float* y,
          int64_t ldy, int64_t r0, int64_t r1) {
  const bool quantised = act_kind_for(w.type) != act_kind::none;
  // act_stride is in bytes for quantised rows, in floats for float rows.
  const int64_t step_bytes = quantised ? act_stride : act_stride * 4;
  auto* ab = static_cast<const uint8_t*>(act);
  int t = 0;
  for (; t + k_tile <= n_tokens; t += k_tile)
    gemm_t<k_tile>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1);
  switch (n_tokens - t) {
    case 1: gemm_t<1>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 2: gemm_t<2>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 3: gemm_t<3>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 4: gemm_t<4>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 5: gemm_t<5>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 6: gemm_t<6>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    case 7: gemm_t<7>(w, ab + t * step_bytes, act_stride, y + t * ldy, ldy, r0, r1); break;
    default: break;
  }
}

// ---- activation quantisation --------------------------------------------------------------------
inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
// 32 floats -> 32 int8 (round to nearest even, as nearbyint in the reference); returns their sum.
inline int quantize32(const float* x, float id, int8_t* out) {
  const __m256 vid = _mm256_set1_ps(id);
  __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), vid));
  __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), vid));
  __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16), vid));
  __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 24), vid));
  const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
  // pack 32-bit -> 16-bit -> 8-bit; packs interleave 128-bit lanes, fix with a permute.
  const __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
  __m256i p = _mm256_packs_epi16(p01, p23);
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), p);
  return sum;
}
inline float amax32(const float* x) {
  __m256 m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(x)), abs_ps(_mm256_loadu_ps(x + 8)));
  m = _mm256_max_ps(m, _mm256_max_ps(abs_ps(_mm256_loadu_ps(x + 16)), abs_ps(_mm256_loadu_ps(x + 24))));
  return hmax(m);
}

void quantize_act(ggml_type wt, const float* x, void* row, int64_t cols) {
  auto* qs = static_cast<int8_t*>(row);
  auto* d = reinterpret_cast<float*>(qs + cols);
  if (act_kind_for(wt) == act_kind::q8_32) {
    float* ds = d + cols / qk32;
    for (int64_t b = 0; b < cols / qk32; ++b) {
      const float amax = amax32(x + b * 32);
      const float id = amax != 0 ? 127.0f / amax : 0.0f;
      const int sum = quantize32(x + b * 32, id, qs + b * 32);
      d[b] = amax / 127.0f;
      ds[b] = d[b] * static_cast<float>(sum);
    }
    return;
  }
  auto* bsums = reinterpret_cast<int16_t*>(d + cols / qk_k);
  for (int64_t b = 0; b < cols / qk_k; ++b) {
    const float* xb = x + b * qk_k;
    float amax = 0;
    for (int j = 0; j < 8; ++j) amax = std::max(amax, amax32(xb + 32 * j));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    for (int j = 0; j < 8; ++j) {
      int8_t* o = qs + b * qk_k + 32 * j;
      quantize32(xb + 32 * j, id, o);
      // two sums of 16
      const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o)));
      const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(o + 16)));
      bsums[b * 16 + 2 * j] = static_cast<int16_t>(hsum_i32(_mm256_madd_epi16(v, _mm256_set1_epi16(1))));
      bsums[b * 16 + 2 * j + 1] = static_cast<int16_t>(hsum_i32(_mm256_madd_epi16(w, _mm256_set1_epi16(1))));
    }
  }
}

// ---- small kernels ------------------------------------------------------------------------------
// exp(x), relative error ~2 ulp on [-87, 88]; exactly 0 below -87.3 (incl. -inf).
inline __m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3f));
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^fx; fx in [-126, 127] so the exponent field stays normal.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16s(src[i]);
}
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f32_f16(const float* q, const uint16_t* k, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i))), acc);
  float s = hsum(acc);
  for (; i < n; ++i) s += q[i] * f16s(k[i]);
  return s;
}

void axpy_f16(float a, const uint16_t* v, float* acc, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(va, x, _mm256_loadu_ps(acc + i)));
  }
  for (; i < n; ++i) acc[i] += a * f16s(v[i]);
}

void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  const float ss = dot_f32(x, x, n);
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
    if (weight) v = _mm256_mul_ps(v, _mm256_loadu_ps(weight + i));
    _mm256_storeu_ps(y + i, v);
  }
  for (; i < n; ++i) y[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  int64_t i = 0;
  if (n >= 8) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    mx = hmax(m);
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -INFINITY) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 vs = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    vs = _mm256_add_ps(vs, e);
  }
  float sum = hsum(vs);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace
}  // namespace fp::engine::detail
