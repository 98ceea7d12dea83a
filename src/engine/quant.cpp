// Type traits, f16/bf16 conversions, dequantisation (exactly as ggml defines each format) and the
// reference quantisers used by make-model, the tests and the scalar kernels.
#include "engine/quant.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "engine/dispatch.hpp"

namespace fp::engine {

using namespace quant;

namespace {
struct type_row {
  ggml_type t;
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
  bool supported;
};
constexpr type_row k_types[] = {
    {ggml_type::f32, "F32", 1, 4, true},       {ggml_type::f16, "F16", 1, 2, true},
    {ggml_type::q4_0, "Q4_0", 32, 18, true},   {ggml_type::q4_1, "Q4_1", 32, 20, false},
    {ggml_type::q5_0, "Q5_0", 32, 22, false},  {ggml_type::q5_1, "Q5_1", 32, 24, false},
    {ggml_type::q8_0, "Q8_0", 32, 34, true},   {ggml_type::q8_1, "Q8_1", 32, 36, false},
    {ggml_type::q2_k, "Q2_K", 256, 84, false}, {ggml_type::q3_k, "Q3_K", 256, 110, false},
    {ggml_type::q4_k, "Q4_K", 256, 144, true}, {ggml_type::q5_k, "Q5_K", 256, 176, true},
    {ggml_type::q6_k, "Q6_K", 256, 210, true}, {ggml_type::q8_k, "Q8_K", 256, 292, false},
    {ggml_type::bf16, "BF16", 1, 2, true},
};
const type_row* find_type(ggml_type t) noexcept {
  for (const auto& r : k_types)
    if (r.t == t) return &r;
  return nullptr;
}

inline uint32_t bits_of(float f) noexcept { return std::bit_cast<uint32_t>(f); }
inline float float_of(uint32_t u) noexcept { return std::bit_cast<float>(u); }
inline int nearest_int(float x) noexcept { return static_cast<int>(std::nearbyint(x)); }
}  // namespace

bool type_supported(ggml_type t) noexcept {
  const auto* r = find_type(t);
  return r && r->supported;
}
std::string_view type_name(ggml_type t) noexcept {
  const auto* r = find_type(t);
  return r ? r->name : std::string_view("?");
}
int64_t type_block_elems(ggml_type t) noexcept {
  const auto* r = find_type(t);
  return r ? r->block_elems : 0;
}
int64_t type_block_bytes(ggml_type t) noexcept {
  const auto* r = find_type(t);
  return r ? r->block_bytes : 0;
}
int64_t type_row_bytes(ggml_type t, int64_t n) noexcept {
  const auto* r = find_type(t);
  if (!r || !r->supported || n < 0 || n % r->block_elems != 0) return 0;
  return n / r->block_elems * r->block_bytes;
}

// ---- conversions --------------------------------------------------------------------------------
float quant::f16_to_f32_scalar(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 0x1p-24f;  // zero or subnormal
    return float_of(bits_of(v) | sign);
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

float f16_to_f32(uint16_t h) noexcept { return f16_to_f32_scalar(h); }

uint16_t f32_to_f16(float f) noexcept {
  uint32_t x = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u)  // inf or NaN (keep a quiet NaN)
    return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u | ((x >> 13) & 0x3ffu) : 0u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65536
  if (x < 0x38800000u) {  // below the smallest normal half: subnormal (exact scaling, RNE)
    const auto m = static_cast<uint32_t>(std::nearbyint(float_of(x) * 0x1p24f));
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t odd = (x >> 13) & 1u;
  x += 0xc8000fffu + odd;  // rebias exponent by -112, round to nearest even
  return static_cast<uint16_t>(sign | (x >> 13));
}

float bf16_to_f32(uint16_t h) noexcept { return float_of(static_cast<uint32_t>(h) << 16); }
uint16_t f32_to_bf16(float f) noexcept {
  uint32_t x = bits_of(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

// ---- dequantisation -----------------------------------------------------------------------------
void dequantize_row(ggml_type t, const void* src, float* dst, int64_t n) noexcept {
  switch (t) {
    case ggml_type::f32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case ggml_type::f16:
      detail::active().f16_to_f32_row(static_cast<const uint16_t*>(src), dst, n);
      return;
    case ggml_type::bf16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case ggml_type::q4_0: {
      auto* b = static_cast<const block_q4_0*>(src);
      for (int64_t i = 0; i < n / qk32; ++i, dst += qk32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 16; ++j) {
          dst[j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
          dst[j + 16] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case ggml_type::q8_0: {
      auto* b = static_cast<const block_q8_0*>(src);
      for (int64_t i = 0; i < n / qk32; ++i, dst += qk32) {
        const float d = f16_to_f32(b[i].d);
        for (int j = 0; j < 32; ++j) dst[j] = d * static_cast<float>(b[i].qs[j]);
      }
      return;
    }
    case ggml_type::q4_k: {
      auto* b = static_cast<const block_q4_k*>(src);
      for (int64_t i = 0; i < n / qk_k; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        for (int k = 0; k < 4; ++k, q += 32) {
          uint8_t sc, m;
          scale_min_k4(2 * k, b[i].scales, sc, m);
          const float d1 = d * sc, m1 = dmin * m;
          scale_min_k4(2 * k + 1, b[i].scales, sc, m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l) *dst++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
          for (int l = 0; l < 32; ++l) *dst++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
      }
      return;
    }
    case ggml_type::q5_k: {
      auto* b = static_cast<const block_q5_k*>(src);
      for (int64_t i = 0; i < n / qk_k; ++i) {
        const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
        const uint8_t* q = b[i].qs;
        for (int k = 0; k < 4; ++k, q += 32) {
          uint8_t sc, m;
          scale_min_k4(2 * k, b[i].scales, sc, m);
          const float d1 = d * sc, m1 = dmin * m;
          scale_min_k4(2 * k + 1, b[i].scales, sc, m);
          const float d2 = d * sc, m2 = dmin * m;
          const uint8_t u1 = static_cast<uint8_t>(1u << (2 * k)), u2 = static_cast<uint8_t>(2u << (2 * k));
          for (int l = 0; l < 32; ++l)
            *dst++ = d1 * static_cast<float>((q[l] & 0xF) + (b[i].qh[l] & u1 ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l)
            *dst++ = d2 * static_cast<float>((q[l] >> 4) + (b[i].qh[l] & u2 ? 16 : 0)) - m2;
        }
      }
      return;
    }
    case ggml_type::q6_k: {
      auto* b = static_cast<const block_q6_k*>(src);
      for (int64_t i = 0; i < n / qk_k; ++i) {
        const float d = f16_to_f32(b[i].d);
        const uint8_t* ql = b[i].ql;
        const uint8_t* qh = b[i].qh;
        const int8_t* sc = b[i].scales;
        for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, dst += 128) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            dst[l] = d * sc[is + 0] * static_cast<float>(q1);
            dst[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
            dst[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
            dst[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
          }
        }
      }
      return;
    }
    default:
      std::fill(dst, dst + n, 0.0f);
      return;
  }
}

// ---- reference quantisers -----------------------------------------------------------------------
namespace {
void quantize_q8_0(const float* x, block_q8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += qk32) {
    float amax = 0;
    for (int j = 0; j < qk32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < qk32; ++j) y[i].qs[j] = static_cast<int8_t>(nearest_int(x[j] * id));
  }
}

void quantize_q4_0(const float* x, block_q4_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += qk32) {
    float amax = 0, max = 0;  // value of largest magnitude, with its sign
    for (int j = 0; j < qk32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::clamp(nearest_int(x[j] * id) + 8, 0, 15);
      const int q1 = std::clamp(nearest_int(x[j + 16] * id) + 8, 0, 15);
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per sub-block of 32, x ~= sc*q - m with 6-bit
// sc and m relative to the super-block scales d and dmin. Writes q (0..nmax) for 256 elements.
void quantize_kx(const float* x, int nmax, uint16_t& d_out, uint16_t& dmin_out, uint8_t* scales,
                 uint8_t* q) {
  float sub_scale[8], sub_min[8];
  for (int j = 0; j < 8; ++j) {
    float mn = 0, mx = 0;  // the range always includes 0 (as ggml: min <= 0)
    for (int l = 0; l < 32; ++l) mn = std::min(mn, x[32 * j + l]), mx = std::max(mx, x[32 * j + l]);
    sub_scale[j] = (mx - mn) / static_cast<float>(nmax);
    sub_min[j] = -mn;
  }
  const float max_scale = *std::max_element(sub_scale, sub_scale + 8);
  const float max_min = *std::max_element(sub_min, sub_min + 8);
  const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
  d_out = f32_to_f16(d);
  dmin_out = f32_to_f16(dmin);
  const float dq = f16_to_f32(d_out), dminq = f16_to_f32(dmin_out);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>(std::clamp(dq != 0 ? nearest_int(sub_scale[j] / dq) : 0, 0, 63));
    m[j] = static_cast<uint8_t>(std::clamp(dminq != 0 ? nearest_int(sub_min[j] / dminq) : 0, 0, 63));
  }
  std::memset(scales, 0, 12);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = sc[j];
      scales[j + 4] = m[j];
    } else {
      scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
      scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
    }
  }
  for (int j = 0; j < 8; ++j) {
    const float s = dq * sc[j], mm = dminq * m[j];
    for (int l = 0; l < 32; ++l) {
      const int v = s != 0 ? nearest_int((x[32 * j + l] + mm) / s) : 0;
      q[32 * j + l] = static_cast<uint8_t>(std::clamp(v, 0, nmax));
    }
  }
}

void quantize_q4_k(const float* x, block_q4_k* y, int64_t nb) {
  uint8_t q[qk_k];
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    quantize_kx(x, 15, y[i].d, y[i].dmin, y[i].scales, q);
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * k + l] = static_cast<uint8_t>(q[64 * k + l] | (q[64 * k + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, block_q5_k* y, int64_t nb) {
  uint8_t q[qk_k];
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    quantize_kx(x, 31, y[i].d, y[i].dmin, y[i].scales, q);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int k = 0; k < 4; ++k)
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * k + l], hi = q[64 * k + 32 + l];
        y[i].qs[32 * k + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1)));
      }
  }
}

void quantize_q6_k(const float* x, block_q6_k* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += qk_k) {
    float sub[16];
    for (int j = 0; j < 16; ++j) {
      float amax = 0;
      for (int l = 0; l < 16; ++l) amax = std::max(amax, std::fabs(x[16 * j + l]));
      sub[j] = amax / 31.0f;
    }
    const float d = *std::max_element(sub, sub + 16) / 127.0f;
    y[i].d = f32_to_f16(d);
    const float dq = f16_to_f32(y[i].d);
    uint8_t q[qk_k];
    for (int j = 0; j < 16; ++j) {
      const int sc = std::clamp(dq != 0 ? nearest_int(sub[j] / dq) : 0, 0, 127);
      y[i].scales[j] = static_cast<int8_t>(sc);
      const float s = dq * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        const int v = s != 0 ? nearest_int(x[16 * j + l] / s) : 0;
        q[16 * j + l] = static_cast<uint8_t>(std::clamp(v, -32, 31) + 32);
      }
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const int q1 = q[128 * h + l], q2 = q[128 * h + l + 32];
        const int q3 = q[128 * h + l + 64], q4 = q[128 * h + l + 96];
        y[i].ql[64 * h + l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
        y[i].ql[64 * h + 32 + l] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
        y[i].qh[32 * h + l] =
            static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
  }
}
}  // namespace

bool quantize_row(ggml_type t, const float* src, void* dst, int64_t n) noexcept {
  if (type_row_bytes(t, n) == 0 && n != 0) return false;
  switch (t) {
    case ggml_type::f32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return true;
    case ggml_type::f16:
      detail::active().f32_to_f16_row(src, static_cast<uint16_t*>(dst), n);
      return true;
    case ggml_type::bf16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return true;
    }
    case ggml_type::q4_0: quantize_q4_0(src, static_cast<block_q4_0*>(dst), n / qk32); return true;
    case ggml_type::q8_0: quantize_q8_0(src, static_cast<block_q8_0*>(dst), n / qk32); return true;
    case ggml_type::q4_k: quantize_q4_k(src, static_cast<block_q4_k*>(dst), n / qk_k); return true;
    case ggml_type::q5_k: quantize_q5_k(src, static_cast<block_q5_k*>(dst), n / qk_k); return true;
    case ggml_type::q6_k: quantize_q6_k(src, static_cast<block_q6_k*>(dst), n / qk_k); return true;
    default: return false;
  }
}

// ---- activations --------------------------------------------------------------------------------
act_kind quant::act_kind_for(ggml_type w) noexcept {
  switch (w) {
    case ggml_type::q4_0:
    case ggml_type::q8_0: return act_kind::q8_32;
    case ggml_type::q4_k:
    case ggml_type::q5_k:
    case ggml_type::q6_k: return act_kind::q8_256;
    default: return act_kind::none;
  }
}

int64_t quant::act_row_bytes(act_kind k, int64_t cols) noexcept {
  int64_t b = 0;
  if (k == act_kind::q8_32) b = cols + 8 * (cols / qk32);
  else if (k == act_kind::q8_256) b = cols + 4 * (cols / qk_k) + 2 * (cols / 16);
  return (b + 63) / 64 * 64;
}

void quant::quantize_act32_ref(const float* x, void* row, int64_t cols) noexcept {
  auto* qs = static_cast<int8_t*>(row);
  auto* d = reinterpret_cast<float*>(qs + cols);
  float* ds = d + cols / qk32;
  for (int64_t b = 0; b < cols / qk32; ++b) {
    const float* xb = x + b * qk32;
    float amax = 0;
    for (int j = 0; j < qk32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f;
    const float id = db != 0 ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < qk32; ++j) {
      const int q = nearest_int(xb[j] * id);
      qs[b * qk32 + j] = static_cast<int8_t>(q);
      sum += q;
    }
    d[b] = db;
    ds[b] = db * static_cast<float>(sum);
  }
}

void quant::quantize_act256_ref(const float* x, void* row, int64_t cols) noexcept {
  auto* qs = static_cast<int8_t*>(row);
  auto* d = reinterpret_cast<float*>(qs + cols);
  auto* bsums = reinterpret_cast<int16_t*>(d + cols / qk_k);
  for (int64_t b = 0; b < cols / qk_k; ++b) {
    const float* xb = x + b * qk_k;
    float amax = 0;
    for (int j = 0; j < qk_k; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float id = amax != 0 ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    for (int j = 0; j < qk_k; ++j) qs[b * qk_k + j] = static_cast<int8_t>(nearest_int(xb[j] * id));
    for (int k = 0; k < qk_k / 16; ++k) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += qs[b * qk_k + 16 * k + l];
      bsums[b * (qk_k / 16) + k] = static_cast<int16_t>(s);
    }
  }
}

}  // namespace fp::engine
