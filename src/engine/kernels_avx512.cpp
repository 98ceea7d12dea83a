// AVX-512 (F/BW/VL) + VNNI variant of the kernels: the integer dot products use vpdpbusd /
// vpdpwssd (compiled with those flags for this file only, see CMakeLists.txt); selected at run
// time by dispatch.cpp when the CPU has them.
#define FP_SIMD_VNNI 1
#include "engine/kernels_simd_impl.hpp"

namespace fp::engine::detail {
const kernel_table& table_avx512() noexcept {
  static const kernel_table t{isa::avx512,   quantize_act, gemm,          f16_to_f32_row, f32_to_f16_row,
                              rmsnorm,       softmax,      silu_mul,      dot_f32,        dot_f32_f16,
                              axpy_f16,      prefill_supported, prefill_act, prefill_gemm};
  return t;
}
}  // namespace fp::engine::detail

// ---- grouped attention over the F16 cache (AVX-512) ---------------------------------------------
namespace fp::engine::detail {
namespace {

// F16 round trip in hardware: exactly ggml's storing of the accumulator as F16.
inline __m512 round_f16(__m512 x) {
  return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// NV = head_dim / 16 vectors per head; the V accumulators of HC heads stay in registers.
template <int NV>
void attn_group_zmm(const attn_group_args& a) {
  constexpr int HC = NV <= 4 ? 16 / NV : 1;  // heads per accumulation pass
  const int hd = a.head_dim, np = a.p1 - a.p0 + 1, nq = a.n_q;
  float* sc = a.scratch;                         // [nq][np] scores, then exp(s - m)
  float* ms = sc + static_cast<size_t>(nq) * np;  // [nq][np] exp(m_prev - m)
  float* sums = ms + static_cast<size_t>(nq) * np;
  float* qr = sums + 16 + nq;
  qr = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(qr) + 63) & ~uintptr_t{63});
  (void)hd;
  for (int h = 0; h < nq; ++h)
    for (int v = 0; v < NV; ++v) _mm512_store_ps(qr + (h * NV + v) * 16, round_f16(_mm512_loadu_ps(a.q + h * NV * 16 + v * 16)));
  const auto row = [&](const uint16_t* const* blocks, int p) {
    return blocks[p / a.block_tokens] + static_cast<int64_t>(p % a.block_tokens) * a.row_stride + a.head_offset;
  };
  // scores: one K row converted once for every head of the group
  for (int p = a.p0; p <= a.p1; ++p) {
    const uint16_t* kp = row(a.k_blocks, p);
    __m512 k[NV];
    for (int v = 0; v < NV; ++v) k[v] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kp + 16 * v)));
    for (int h = 0; h < nq; ++h) {
      __m512 s = _mm512_mul_ps(_mm512_load_ps(qr + h * NV * 16), k[0]);
      for (int v = 1; v < NV; ++v) s = _mm512_fmadd_ps(_mm512_load_ps(qr + (h * NV + v) * 16), k[v], s);
      sc[static_cast<size_t>(h) * np + (p - a.p0)] = hsum512(s) * a.scale;
    }
  }
  // online-softmax factors, vectorised: with m_i = max(m_{i-1}, s_i), the reference's branches are
  // ms_i = exp(m_{i-1} - m_i) (1 when the max did not move) and vs_i = exp(s_i - m_i) (1 when it did).
  for (int h = 0; h < nq; ++h) {
    float* s = sc + static_cast<size_t>(h) * np;
    float* m = ms + static_cast<size_t>(h) * np;
    float run = -INFINITY;
    for (int i = 0; i < np; ++i) {
      const float nm = std::max(run, s[i]);
      m[i] = run - nm;  // -inf at i = 0: exp gives 0
      s[i] -= nm;
      run = nm;
    }
    int i = 0;
    for (; i + 8 <= np; i += 8) {
      _mm256_storeu_ps(m + i, exp_ps(_mm256_loadu_ps(m + i)));
      _mm256_storeu_ps(s + i, exp_ps(_mm256_loadu_ps(s + i)));
    }
    for (; i < np; ++i) m[i] = std::exp(m[i]), s[i] = std::exp(s[i]);
    float sum = 0;
    for (i = 0; i < np; ++i) sum = sum * m[i] + s[i];
    sums[h] = sum;
  }
  // V accumulation: one V row converted once per pass of HC heads
  for (int h0 = 0; h0 < nq; h0 += HC) {
    const int hc = std::min(HC, nq - h0);
    __m512 acc[HC][NV];
    for (int h = 0; h < HC; ++h)
      for (int v = 0; v < NV; ++v) acc[h][v] = _mm512_setzero_ps();
    for (int i = 0; i < np; ++i) {
      const uint16_t* vp = row(a.v_blocks, a.p0 + i);
      __m512 vv[NV];
      for (int v = 0; v < NV; ++v) vv[v] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp + 16 * v)));
      for (int h = 0; h < HC; ++h) {
        if (h >= hc) break;
        const float msh = ms[static_cast<size_t>(h0 + h) * np + i];
        const __m512 vs = _mm512_set1_ps(sc[static_cast<size_t>(h0 + h) * np + i]);
        if (msh != 1.0f) {
          const __m512 f = _mm512_set1_ps(msh);
          for (int v = 0; v < NV; ++v) acc[h][v] = round_f16(_mm512_mul_ps(acc[h][v], f));
        }
        for (int v = 0; v < NV; ++v) acc[h][v] = round_f16(_mm512_fmadd_ps(vv[v], vs, acc[h][v]));
      }
    }
    for (int h = 0; h < hc; ++h) {
      const __m512 inv = _mm512_set1_ps(1.0f / sums[h0 + h]);
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(a.out + (h0 + h) * NV * 16 + v * 16, _mm512_mul_ps(acc[h][v], inv));
    }
  }
}

}  // namespace

void attn_group_avx512(const attn_group_args& a) noexcept {
  switch (a.head_dim) {
    case 64: attn_group_zmm<4>(a); return;
    case 128: attn_group_zmm<8>(a); return;
    case 32: attn_group_zmm<2>(a); return;
    case 256: attn_group_zmm<16>(a); return;
    default: attn_group_ref(a); return;
  }
}
}  // namespace fp::engine::detail
