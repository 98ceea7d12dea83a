// Scalar reference kernels: plain C++, no intrinsics. Every SIMD variant is tested against these.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/dispatch.hpp"
#include "engine/quant.hpp"

namespace fp::engine::detail {
namespace {

using namespace quant;

void quantize_act(ggml_type wt, const float* x, void* row, int64_t cols) {
  if (act_kind_for(wt) == act_kind::q8_32) quantize_act32_ref(x, row, cols);
  else quantize_act256_ref(x, row, cols);
}

float f16f(uint16_t h) { return f16_to_f32_scalar(h); }

// Integer dot products of one weight row with one quantised activation row.
float dot_q4_0(const block_q4_0* w, const act32_view& a, int64_t nb) {
  float sum = 0, corr = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * qk32;
    int isum = 0;
    for (int j = 0; j < 16; ++j) isum += (w[b].qs[j] & 0xF) * q[j] + (w[b].qs[j] >> 4) * q[j + 16];
    const float dw = f16f(w[b].d);
    sum += dw * a.d[b] * static_cast<float>(isum);
    corr += dw * a.ds[b];
  }
  return sum - 8.0f * corr;
}

float dot_q8_0(const block_q8_0* w, const act32_view& a, int64_t nb) {
  float sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * qk32;
    int isum = 0;
    for (int j = 0; j < 32; ++j) isum += w[b].qs[j] * q[j];
    sum += f16f(w[b].d) * a.d[b] * static_cast<float>(isum);
  }
  return sum;
}

float dot_q4_k(const block_q4_k* w, const act256_view& a, int64_t nb) {
  float sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * qk_k;
    const int16_t* bs = a.bsums + b * 16;
    int isum = 0, msum = 0;
    for (int k = 0; k < 4; ++k) {
      uint8_t sc1, m1, sc2, m2;
      scale_min_k4(2 * k, w[b].scales, sc1, m1);
      scale_min_k4(2 * k + 1, w[b].scales, sc2, m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        s1 += (w[b].qs[32 * k + l] & 0xF) * q[64 * k + l];
        s2 += (w[b].qs[32 * k + l] >> 4) * q[64 * k + 32 + l];
      }
      isum += sc1 * s1 + sc2 * s2;
      msum += m1 * (bs[4 * k] + bs[4 * k + 1]) + m2 * (bs[4 * k + 2] + bs[4 * k + 3]);
    }
    sum += a.d[b] * (f16f(w[b].d) * static_cast<float>(isum) - f16f(w[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q5_k(const block_q5_k* w, const act256_view& a, int64_t nb) {
  float sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * qk_k;
    const int16_t* bs = a.bsums + b * 16;
    int isum = 0, msum = 0;
    for (int k = 0; k < 4; ++k) {
      uint8_t sc1, m1, sc2, m2;
      scale_min_k4(2 * k, w[b].scales, sc1, m1);
      scale_min_k4(2 * k + 1, w[b].scales, sc2, m2);
      int s1 = 0, s2 = 0;
      for (int l = 0; l < 32; ++l) {
        const int h1 = (w[b].qh[l] >> (2 * k)) & 1, h2 = (w[b].qh[l] >> (2 * k + 1)) & 1;
        s1 += ((w[b].qs[32 * k + l] & 0xF) | (h1 << 4)) * q[64 * k + l];
        s2 += ((w[b].qs[32 * k + l] >> 4) | (h2 << 4)) * q[64 * k + 32 + l];
      }
      isum += sc1 * s1 + sc2 * s2;
      msum += m1 * (bs[4 * k] + bs[4 * k + 1]) + m2 * (bs[4 * k + 2] + bs[4 * k + 3]);
    }
    sum += a.d[b] * (f16f(w[b].d) * static_cast<float>(isum) - f16f(w[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q6_k(const block_q6_k* w, const act256_view& a, int64_t nb) {
  float sum = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.qs + b * qk_k;
    int sub[16] = {};
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* qa = q + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        sub[8 * h + l / 16 + 0] += q1 * qa[l];
        sub[8 * h + l / 16 + 2] += q2 * qa[l + 32];
        sub[8 * h + l / 16 + 4] += q3 * qa[l + 64];
        sub[8 * h + l / 16 + 6] += q4 * qa[l + 96];
      }
    }
    int isum = 0;
    for (int j = 0; j < 16; ++j) isum += w[b].scales[j] * sub[j];
    sum += a.d[b] * f16f(w[b].d) * static_cast<float>(isum);
  }
  return sum;
}

float dot_float_row(ggml_type t, const void* wrow, const float* x, int64_t n) {
  float sum = 0;
  if (t == ggml_type::f32) {
    auto* w = static_cast<const float*>(wrow);
    for (int64_t i = 0; i < n; ++i) sum += w[i] * x[i];
  } else if (t == ggml_type::f16) {
    auto* w = static_cast<const uint16_t*>(wrow);
    for (int64_t i = 0; i < n; ++i) sum += f16f(w[i]) * x[i];
  } else {
    auto* w = static_cast<const uint16_t*>(wrow);
    for (int64_t i = 0; i < n; ++i) sum += bf16_to_f32(w[i]) * x[i];
  }
  return sum;
}

void gemm(const weight_view& w, const void* act, int64_t act_stride, int n_tokens, float* y,
          int64_t ldy, int64_t r0, int64_t r1) {
  const int64_t stride = w.row_stride ? w.row_stride : type_row_bytes(w.type, w.cols);
  auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = base + r * stride;
    for (int t = 0; t < n_tokens; ++t) {
      float v = 0;
      switch (w.type) {
        case ggml_type::q4_0:
        case ggml_type::q8_0: {
          const auto a = act32_at(static_cast<const uint8_t*>(act) + t * act_stride, w.cols);
          v = w.type == ggml_type::q4_0
                  ? dot_q4_0(reinterpret_cast<const block_q4_0*>(row), a, w.cols / qk32)
                  : dot_q8_0(reinterpret_cast<const block_q8_0*>(row), a, w.cols / qk32);
          break;
        }
        case ggml_type::q4_k:
        case ggml_type::q5_k:
        case ggml_type::q6_k: {
          const auto a = act256_at(static_cast<const uint8_t*>(act) + t * act_stride, w.cols);
          const int64_t nb = w.cols / qk_k;
          if (w.type == ggml_type::q4_k) v = dot_q4_k(reinterpret_cast<const block_q4_k*>(row), a, nb);
          else if (w.type == ggml_type::q5_k) v = dot_q5_k(reinterpret_cast<const block_q5_k*>(row), a, nb);
          else v = dot_q6_k(reinterpret_cast<const block_q6_k*>(row), a, nb);
          break;
        }
        default:
          v = dot_float_row(w.type, row, static_cast<const float*>(act) + t * act_stride, w.cols);
      }
      y[t * ldy + r] = v;
    }
  }
}

void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16f(src[i]);
}
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}

void softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -std::numeric_limits<float>::infinity()) {
    std::fill(x, x + n, 0.0f);
    return;
  }
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float dot_f32_f16(const float* q, const uint16_t* k, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += q[i] * f16f(k[i]);
  return s;
}

void axpy_f16(float a, const uint16_t* v, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += a * f16f(v[i]);
}

}  // namespace

namespace {
// F16 rounding in plain float arithmetic (Veltkamp split with 2^13+1): identical to a hardware
// F16 round trip for values in F16's normal range. This file is compiled for the baseline ISA,
// so nothing contracts the three operations into an FMA.
inline float round_to_f16(float x) noexcept {
  const float t = x * 8193.0f;
  return t - (t - x);
}
}  // namespace

// The reference of attention_group: per head, scores first, then the online softmax over V with
// an F16 accumulator (ggml's CPU flash attention with an F16 cache).
void attn_group_ref(const attn_group_args& a) noexcept {
  const int hd = a.head_dim, np = a.p1 - a.p0 + 1;
  float* sc = a.scratch;
  float* qr = sc + np;
  float* acc = qr + hd;
  for (int h = 0; h < a.n_q; ++h) {
    const float* q = a.q + static_cast<size_t>(h) * hd;
    for (int d = 0; d < hd; ++d) qr[d] = round_to_f16(q[d]);
    for (int p = a.p0; p <= a.p1; ++p) {
      const uint16_t* kp = a.k_blocks[p / a.block_tokens] + (p % a.block_tokens) * a.row_stride + a.head_offset;
      float s = 0;
      for (int d = 0; d < hd; ++d) s += qr[d] * f16f(kp[d]);
      sc[p - a.p0] = s * a.scale;
    }
    float m = -INFINITY, sum = 0.0f;
    std::fill(acc, acc + hd, 0.0f);
    for (int p = a.p0; p <= a.p1; ++p) {
      const float s = sc[p - a.p0];
      float ms = 1.0f, vs = 1.0f;
      if (s > m) {
        ms = std::exp(m - s);
        m = s;
        for (int d = 0; d < hd; ++d) acc[d] = round_to_f16(acc[d] * ms);
      } else {
        vs = std::exp(s - m);
      }
      const uint16_t* vp = a.v_blocks[p / a.block_tokens] + (p % a.block_tokens) * a.row_stride + a.head_offset;
      for (int d = 0; d < hd; ++d) acc[d] = round_to_f16(acc[d] + f16f(vp[d]) * vs);
      sum = sum * ms + vs;
    }
    const float inv = 1.0f / sum;
    float* out = a.out + static_cast<size_t>(h) * hd;
    for (int d = 0; d < hd; ++d) out[d] = acc[d] * inv;
  }
}

const kernel_table& table_scalar() noexcept {
  static const kernel_table t{isa::scalar, quantize_act, gemm, f16_to_f32_row, f32_to_f16_row,
                              rmsnorm, softmax, silu_mul, dot_f32, dot_f32_f16, axpy_f16};
  return t;
}

}  // namespace fp::engine::detail
