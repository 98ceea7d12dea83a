// Kernel tests: every SIMD variant against the scalar reference on random inputs of odd sizes,
// (de)quantisation of known values and round trips, f16/bf16 conversions, the threaded matmul.
//
// Tolerances (stated here, asserted below):
//   * quantised activations: every variant produces the same bytes as the reference (exact).
//   * integer-dot matmul, variant vs scalar: |d| <= 1e-5 * sum_c |w_c x_c| + 1e-6 (only the float
//     summation order differs).
//   * float-weight matmul and dot products: same bound.
//   * quantised matmul vs an F32 product of the dequantised weights: |d| <= 0.02 * sum |w x|
//     (8-bit activations).
//   * softmax / silu / rmsnorm: relative 1e-5 (+1e-7 absolute); exp is a polynomial in SIMD.
//   * f16 round trip: exact for every finite half; f32->f16 matches F16C rounding.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/dispatch.hpp"
#include "engine/kernels.hpp"
#include "engine/quant.hpp"
#include "engine/threadpool.hpp"

namespace fp::engine {
namespace {

using detail::isa;
using detail::kernel_table;

std::vector<isa> variants() {
  std::vector<isa> v;
  for (isa i : {isa::avx2, isa::avx512})
    if (detail::isa_supported(i)) v.push_back(i);
  return v;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

const ggml_type k_all_types[] = {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q4_0,
                                 ggml_type::q8_0, ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k};

struct test_matrix {
  ggml_type type;
  int64_t rows, cols;
  std::vector<uint8_t> data;
  std::vector<float> deq;  // dequantised, rows x cols
  weight_view view() const { return {type, rows, cols, data.data(), 0}; }
};

test_matrix make_matrix(ggml_type t, int64_t rows, int64_t cols, uint32_t seed) {
  test_matrix m{t, rows, cols, {}, {}};
  const int64_t rb = type_row_bytes(t, cols);
  m.data.resize(static_cast<size_t>(rb * rows));
  m.deq.resize(static_cast<size_t>(rows * cols));
  const auto src = random_floats(static_cast<size_t>(rows * cols), seed);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_TRUE(quantize_row(t, src.data() + r * cols, m.data.data() + r * rb, cols));
    dequantize_row(t, m.data.data() + r * rb, m.deq.data() + r * cols, cols);
  }
  return m;
}

// Quantised activations for `table`, or the floats themselves.
std::vector<uint8_t> prepare_act(const kernel_table& k, ggml_type wt, const std::vector<float>& x,
                                 int n_tokens, int64_t cols, int64_t& stride) {
  const auto kind = quant::act_kind_for(wt);
  if (kind == quant::act_kind::none) {
    stride = cols;
    std::vector<uint8_t> b(x.size() * 4);
    std::memcpy(b.data(), x.data(), b.size());
    return b;
  }
  stride = quant::act_row_bytes(kind, cols);
  std::vector<uint8_t> b(static_cast<size_t>(stride * n_tokens), 0);
  for (int t = 0; t < n_tokens; ++t) k.quantize_act(wt, x.data() + t * cols, b.data() + t * stride, cols);
  return b;
}

// ---- conversions --------------------------------------------------------------------------------
TEST(KernelsF16, RoundTripEveryFiniteHalfExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf / NaN
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    ASSERT_EQ(f32_to_f16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(KernelsF16, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);   // rounds up to inf
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);    // smallest subnormal
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 0x3p-11f), 0x3c02);  // tie -> even (up)
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_FLOAT_EQ(bf16_to_f32(0x4049), 3.140625f);
}

TEST(KernelsF16, VariantsMatchScalarConversion) {
  const auto x = random_floats(1001, 7, 100.0f);
  std::vector<uint16_t> ref(x.size()), got(x.size());
  std::vector<float> back_ref(x.size()), back(x.size());
  detail::table_scalar().f32_to_f16_row(x.data(), ref.data(), 1001);
  detail::table_scalar().f16_to_f32_row(ref.data(), back_ref.data(), 1001);
  for (isa v : variants()) {
    const auto& k = detail::table_for(v);
    k.f32_to_f16_row(x.data(), got.data(), 1001);
    EXPECT_EQ(got, ref) << detail::isa_name(v);
    k.f16_to_f32_row(ref.data(), back.data(), 1001);
    EXPECT_EQ(0, std::memcmp(back.data(), back_ref.data(), back.size() * 4)) << detail::isa_name(v);
  }
}

// ---- (de)quantisation ---------------------------------------------------------------------------
TEST(KernelsQuant, TypeTraits) {
  EXPECT_EQ(type_row_bytes(ggml_type::q4_0, 64), 36);
  EXPECT_EQ(type_row_bytes(ggml_type::q8_0, 32), 34);
  EXPECT_EQ(type_row_bytes(ggml_type::q4_k, 512), 288);
  EXPECT_EQ(type_row_bytes(ggml_type::q5_k, 256), 176);
  EXPECT_EQ(type_row_bytes(ggml_type::q6_k, 256), 210);
  EXPECT_EQ(type_row_bytes(ggml_type::q4_0, 33), 0);  // not a block multiple
  EXPECT_EQ(type_row_bytes(ggml_type::q2_k, 256), 0);  // unsupported
  EXPECT_EQ(type_name(ggml_type::q4_k), "Q4_K");
}

TEST(KernelsQuant, DequantizeQ4_0KnownBlock) {
  quant::block_q4_0 b{};
  b.d = f32_to_f16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float out[32];
  dequantize_row(ggml_type::q4_0, &b, out, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_FLOAT_EQ(out[j], 0.5f * static_cast<float>(j - 8));
    EXPECT_FLOAT_EQ(out[j + 16], 0.5f * static_cast<float>(7 - j));
  }
}

TEST(KernelsQuant, DequantizeQ8_0KnownBlock) {
  quant::block_q8_0 b{};
  b.d = f32_to_f16(0.25f);
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  float out[32];
  dequantize_row(ggml_type::q8_0, &b, out, 32);
  for (int j = 0; j < 32; ++j) EXPECT_FLOAT_EQ(out[j], 0.25f * static_cast<float>(j * 8 - 128));
}

TEST(KernelsQuant, DequantizeQ4_KKnownBlock) {
  // sc_j = j + 1, m_j = 2j (6-bit packed as ggml), every q = 3 in sub-block j's elements.
  quant::block_q4_k b{};
  b.d = f32_to_f16(0.5f);
  b.dmin = f32_to_f16(0.25f);
  uint8_t sc[8], m[8];
  for (int j = 0; j < 8; ++j) sc[j] = static_cast<uint8_t>(j + 1 + (j >= 4 ? 40 : 0)), m[j] = static_cast<uint8_t>(2 * j + (j >= 4 ? 33 : 0));
  for (int j = 0; j < 4; ++j) b.scales[j] = sc[j], b.scales[j + 4] = m[j];
  for (int j = 4; j < 8; ++j) {
    b.scales[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
    b.scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    b.scales[j] |= static_cast<uint8_t>((m[j] >> 4) << 6);
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t s, mm;
    quant::scale_min_k4(j, b.scales, s, mm);
    EXPECT_EQ(s, sc[j]);
    EXPECT_EQ(mm, m[j]);
  }
  std::memset(b.qs, 0x33, sizeof(b.qs));
  float out[256];
  dequantize_row(ggml_type::q4_k, &b, out, 256);
  for (int i = 0; i < 256; ++i) {
    const int j = i / 32;
    EXPECT_FLOAT_EQ(out[i], 0.5f * sc[j] * 3.0f - 0.25f * m[j]) << i;
  }
}

TEST(KernelsQuant, DequantizeQ6_KKnownBlock) {
  // element e has q = e % 64, scales[j] = j - 8, d = 1/16.
  quant::block_q6_k b{};
  b.d = f32_to_f16(1.0f / 16);
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(j - 8);
  int q[256];
  for (int e = 0; e < 256; ++e) q[e] = e % 64;
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int q1 = q[128 * h + l], q2 = q[128 * h + l + 32], q3 = q[128 * h + l + 64], q4 = q[128 * h + l + 96];
      b.ql[64 * h + l] = static_cast<uint8_t>((q1 & 15) | ((q3 & 15) << 4));
      b.ql[64 * h + 32 + l] = static_cast<uint8_t>((q2 & 15) | ((q4 & 15) << 4));
      b.qh[32 * h + l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  float out[256];
  dequantize_row(ggml_type::q6_k, &b, out, 256);
  for (int e = 0; e < 256; ++e)
    EXPECT_FLOAT_EQ(out[e], (1.0f / 16) * static_cast<float>(e / 16 - 8) * static_cast<float>(q[e] - 32)) << e;
}

TEST(KernelsQuant, RoundTripErrorWithinFormatBounds) {
  // RMS error relative to the RMS of N(0,1) data: what each format's bits allow.
  struct bound { ggml_type t; double max_rel_rms; };
  const bound bounds[] = {{ggml_type::f32, 0.0},   {ggml_type::f16, 1e-3},  {ggml_type::bf16, 5e-3},
                          {ggml_type::q8_0, 0.01}, {ggml_type::q6_k, 0.04}, {ggml_type::q5_k, 0.07},
                          {ggml_type::q4_k, 0.13}, {ggml_type::q4_0, 0.13}};
  for (const auto& b : bounds) {
    const int64_t n = 256 * 12;
    const auto x = random_floats(static_cast<size_t>(n), 11);
    std::vector<uint8_t> q(static_cast<size_t>(type_row_bytes(b.t, n)));
    std::vector<float> y(static_cast<size_t>(n));
    ASSERT_TRUE(quantize_row(b.t, x.data(), q.data(), n));
    dequantize_row(b.t, q.data(), y.data(), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) err += (x[i] - y[i]) * (x[i] - y[i]), ref += x[i] * x[i];
    EXPECT_LE(std::sqrt(err / ref), b.max_rel_rms + 1e-12) << type_name(b.t);
  }
}

TEST(KernelsQuant, ActivationQuantisationIsIdenticalInEveryVariant) {
  const int64_t cols = 256 * 3;
  auto x = random_floats(static_cast<size_t>(cols), 5, 3.0f);
  x[7] = 0;  // a zero block below
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);
  for (ggml_type wt : {ggml_type::q4_0, ggml_type::q4_k}) {
    int64_t s = 0;
    const auto ref = prepare_act(detail::table_scalar(), wt, x, 1, cols, s);
    for (isa v : variants()) {
      const auto got = prepare_act(detail::table_for(v), wt, x, 1, cols, s);
      EXPECT_EQ(got, ref) << detail::isa_name(v) << " " << type_name(wt);
    }
  }
}

// ---- matrix products ----------------------------------------------------------------------------
// Reference bound: sum over c of |w x| for each output.
std::vector<float> abs_sums(const test_matrix& m, const std::vector<float>& x, int n_tokens) {
  std::vector<float> s(static_cast<size_t>(n_tokens * m.rows));
  for (int t = 0; t < n_tokens; ++t)
    for (int64_t r = 0; r < m.rows; ++r) {
      double a = 0;
      for (int64_t c = 0; c < m.cols; ++c) a += std::fabs(m.deq[r * m.cols + c] * x[t * m.cols + c]);
      s[t * m.rows + r] = static_cast<float>(a);
    }
  return s;
}

TEST(KernelsMatmul, EveryVariantMatchesScalarOnOddShapes) {
  const auto vs = variants();
  if (vs.empty()) GTEST_SKIP() << "no SIMD variant on this CPU";
  for (ggml_type t : k_all_types)
   for (int shape = 0; shape < 2; ++shape) {
    const int64_t blk = type_block_elems(t);
    // shape 1 has more blocks than one 16-block SIMD group plus a remainder
    const int64_t cols = blk == 1 ? (shape ? 1031 : 173) : (blk == 32 ? 32 * (shape ? 37 : 7) : 256 * (shape ? 5 : 3));
    const int64_t rows = 37;
    const auto m = make_matrix(t, rows, cols, 3 + static_cast<uint32_t>(t));
    for (int n_tokens : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
      const auto x = random_floats(static_cast<size_t>(n_tokens * cols), 100 + n_tokens);
      const auto bound = abs_sums(m, x, n_tokens);
      int64_t stride = 0;
      const auto& ks = detail::table_scalar();
      const auto act = prepare_act(ks, t, x, n_tokens, cols, stride);
      std::vector<float> ref(static_cast<size_t>(n_tokens * rows));
      ks.gemm(m.view(), act.data(), stride, n_tokens, ref.data(), rows, 0, rows);
      for (isa v : vs) {
        std::vector<float> got(ref.size(), NAN);
        detail::table_for(v).gemm(m.view(), act.data(), stride, n_tokens, got.data(), rows, 0, rows);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(got[i], ref[i], 1e-5f * bound[i] + 1e-6f)
              << detail::isa_name(v) << " " << type_name(t) << " n_tokens=" << n_tokens << " i=" << i;
      }
      // and the scalar reference itself is close to an F32 product of the dequantised weights
      for (int tk = 0; tk < n_tokens; ++tk)
        for (int64_t r = 0; r < rows; ++r) {
          double e = 0;
          for (int64_t c = 0; c < cols; ++c) e += m.deq[r * cols + c] * x[tk * cols + c];
          const size_t i = static_cast<size_t>(tk * rows + r);
          const float tol = quant::act_kind_for(t) == quant::act_kind::none ? 1e-5f : 0.02f;
          ASSERT_NEAR(ref[i], e, tol * bound[i] + 1e-5f) << type_name(t) << " i=" << i;
        }
    }
  }
}

TEST(KernelsMatmul, PrefillPathMatchesScalar) {
  bool any = false;
  for (isa v : variants()) {
    const auto& k = detail::table_for(v);
    if (!k.prefill_gemm) continue;
    any = true;
    for (ggml_type t : {ggml_type::q4_0, ggml_type::q8_0, ggml_type::q4_k}) {
      for (int64_t cols : {512, 1536}) {
        ASSERT_TRUE(k.prefill_supported(t, cols));
        EXPECT_FALSE(k.prefill_supported(t, cols + 32));
        const int64_t rows = 37;
        const auto m = make_matrix(t, rows, cols, 77);
        for (int n_tokens : {16, 23}) {
          const auto x = random_floats(static_cast<size_t>(n_tokens * cols), 78);
          const auto bound = abs_sums(m, x, n_tokens);
          int64_t stride = 0;
          const auto act = prepare_act(detail::table_scalar(), t, x, n_tokens, cols, stride);
          const int64_t pstride = quant::act_row_bytes(quant::act_kind::q8_32, cols);
          std::vector<uint8_t> pact(static_cast<size_t>(pstride * n_tokens));
          for (int tk = 0; tk < n_tokens; ++tk) k.prefill_act(t, act.data() + tk * stride, pact.data() + tk * pstride, cols);
          std::vector<float> ref(static_cast<size_t>(n_tokens * rows)), got(ref.size(), NAN);
          detail::table_scalar().gemm(m.view(), act.data(), stride, n_tokens, ref.data(), rows, 0, rows);
          // two row ranges, as matmul splits them (multiples of 16, then the rest)
          k.prefill_gemm(m.view(), pact.data(), pstride, n_tokens, got.data(), rows, 0, 32);
          k.prefill_gemm(m.view(), pact.data(), pstride, n_tokens, got.data(), rows, 32, rows);
          for (size_t i = 0; i < ref.size(); ++i)
            ASSERT_NEAR(got[i], ref[i], 1e-5f * bound[i] + 1e-6f)
                << detail::isa_name(v) << " " << type_name(t) << " cols=" << cols << " i=" << i;
        }
      }
    }
  }
  if (!any) GTEST_SKIP() << "no variant with a prefill path on this CPU";
}

// AMX BF16 tiles (only where the CPU and OS allow them): against an F32 product of the
// dequantised weights in double, |d| <= 0.01 * sum |w x| + 1e-6 (BF16 keeps 8 significant bits of
// both operands: 2 x 2^-9 relative per product, summed in F32). Odd row counts (a panel of 32
// rows cut at 5 and at 21), token counts that are not multiples of 16 (padded tiles), strided x
// and y, and the two row ranges matmul would give two threads.
TEST(KernelsMatmul, AmxPathMatchesF32Reference) {
  if (!detail::amx_available()) GTEST_SKIP() << "no AMX-BF16 (or no OS permission) on this machine";
  const auto& ax = detail::amx_table();
  EXPECT_FALSE(ax.supported(ggml_type::q6_k, 256));
  EXPECT_FALSE(ax.supported(ggml_type::q4_k, 96));
  struct shape { ggml_type t; int64_t cols; };
  for (shape sh : {shape{ggml_type::q4_0, 96}, shape{ggml_type::q4_0, 1184}, shape{ggml_type::q8_0, 160},
                   shape{ggml_type::q4_k, 768}}) {
    ASSERT_TRUE(ax.supported(sh.t, sh.cols));
    for (int64_t rows : {5, 37, 53}) {
      const auto m = make_matrix(sh.t, rows, sh.cols, 101);
      for (int n_tokens : {16, 23, 37}) {
        const int64_t ldx = sh.cols + 3, ldy = rows + 2;
        const auto x = random_floats(static_cast<size_t>(n_tokens * ldx), 102);
        const int n_pad = (n_tokens + 15) / 16 * 16;
        std::vector<uint16_t> act(static_cast<size_t>(n_pad * sh.cols), 0xffff);
        for (int tb = 0; tb < n_pad; tb += 16) ax.act(x.data(), ldx, n_tokens, sh.cols, n_pad, tb, tb + 16, act.data());
        std::vector<float> got(static_cast<size_t>(n_tokens * ldy), -7.0f);
        const int64_t split = std::min<int64_t>(rows, 32);
        ax.gemm(m.view(), act.data(), n_pad, n_tokens, got.data(), ldy, 0, split);
        if (split < rows) ax.gemm(m.view(), act.data(), n_pad, n_tokens, got.data(), ldy, split, rows);
        for (int t = 0; t < n_tokens; ++t) {
          for (int64_t r = 0; r < rows; ++r) {
            double ref = 0, bound = 0;
            for (int64_t c = 0; c < sh.cols; ++c) {
              const double p = static_cast<double>(m.deq[static_cast<size_t>(r * sh.cols + c)]) * x[static_cast<size_t>(t * ldx + c)];
              ref += p, bound += std::fabs(p);
            }
            ASSERT_NEAR(got[static_cast<size_t>(t * ldy + r)], ref, 0.01 * bound + 1e-6)
                << type_name(sh.t) << " cols=" << sh.cols << " rows=" << rows << " n=" << n_tokens << " t=" << t << " r=" << r;
          }
          for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(got[static_cast<size_t>(t * ldy + r)], -7.0f);  // untouched
        }
      }
    }
  }
}

TEST(KernelsMatmul, ThreadedMatmulEqualsSingleThreadRows) {
  for (ggml_type t : {ggml_type::q4_0, ggml_type::q4_k, ggml_type::f16}) {
   for (int n_tokens : {6, 21}) {
    const int64_t rows = 301, cols = 512;
    const auto m = make_matrix(t, rows, cols, 42);
    const auto x = random_floats(static_cast<size_t>(n_tokens * cols), 43);
    std::vector<float> ref(static_cast<size_t>(n_tokens * rows));
    matmul_rows(m.view(), x.data(), cols, ref.data(), rows, n_tokens, 0, rows);
    for (int threads : {1, 2, 3}) {
      thread_pool pool(threads);
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> got(ref.size(), NAN);
        matmul(m.view(), x.data(), got.data(), n_tokens, pool);
        EXPECT_EQ(0, std::memcmp(got.data(), ref.data(), ref.size() * 4))
            << type_name(t) << " threads=" << threads << " n_tokens=" << n_tokens;
      }
    }
   }
  }
}

TEST(KernelsMatmul, StridedInputAndOutput) {
  const int64_t rows = 40, cols = 64;
  const auto m = make_matrix(ggml_type::q8_0, rows, cols, 9);
  const int n_tokens = 3;
  const int64_t ldx = cols + 5, ldy = rows + 3;
  const auto x = random_floats(static_cast<size_t>(n_tokens * ldx), 10);
  std::vector<float> y(static_cast<size_t>(n_tokens * ldy), -7.0f);
  thread_pool pool(2);
  matmul(m.view(), x.data(), ldx, y.data(), ldy, n_tokens, pool);
  for (int t = 0; t < n_tokens; ++t) {
    float single[40];
    matmul_rows(m.view(), x.data() + t * ldx, ldx, single, rows, 1, 0, rows);
    for (int64_t r = 0; r < rows; ++r) EXPECT_FLOAT_EQ(y[t * ldy + r], single[r]);
    for (int64_t r = rows; r < ldy; ++r) EXPECT_EQ(y[t * ldy + r], -7.0f);  // padding untouched
  }
}

TEST(KernelsMatmul, GetRowDequantises) {
  const auto m = make_matrix(ggml_type::q4_k, 5, 256, 1);
  std::vector<float> row(256);
  get_row(m.view(), 3, row.data());
  for (int i = 0; i < 256; ++i) EXPECT_EQ(row[i], m.deq[3 * 256 + i]);
}

// ---- small kernels ------------------------------------------------------------------------------
void expect_close(const std::vector<float>& got, const std::vector<float>& ref, float rel, const char* what) {
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], rel * std::fabs(ref[i]) + 1e-7f) << what << " i=" << i;
}

TEST(KernelsSmall, VariantsMatchScalar) {
  const auto& ks = detail::table_scalar();
  for (int64_t n : {1, 7, 8, 63, 173, 1000}) {
    const auto a = random_floats(static_cast<size_t>(n), 1, 4.0f);
    const auto b = random_floats(static_cast<size_t>(n), 2);
    const auto w = random_floats(static_cast<size_t>(n), 3);
    std::vector<uint16_t> h(static_cast<size_t>(n));
    ks.f32_to_f16_row(b.data(), h.data(), n);
    for (isa v : variants()) {
      const auto& k = detail::table_for(v);
      const char* name = detail::isa_name(v).data();
      std::vector<float> r1(a.size()), r2(a.size());
      ks.rmsnorm(a.data(), w.data(), r1.data(), n, 1e-5f);
      k.rmsnorm(a.data(), w.data(), r2.data(), n, 1e-5f);
      expect_close(r2, r1, 1e-5f, name);
      r1 = a, r2 = a;
      ks.softmax(r1.data(), n);
      k.softmax(r2.data(), n);
      expect_close(r2, r1, 1e-5f, name);
      ks.silu_mul(a.data(), b.data(), r1.data(), n);
      k.silu_mul(a.data(), b.data(), r2.data(), n);
      expect_close(r2, r1, 1e-5f, name);
      double mag = 0;
      for (int64_t i = 0; i < n; ++i) mag += std::fabs(a[i] * b[i]);
      EXPECT_NEAR(k.dot_f32(a.data(), b.data(), n), ks.dot_f32(a.data(), b.data(), n), 1e-5 * mag + 1e-6);
      EXPECT_NEAR(k.dot_f32_f16(a.data(), h.data(), n), ks.dot_f32_f16(a.data(), h.data(), n), 1e-5 * mag + 1e-6);
      r1 = b, r2 = b;
      ks.axpy_f16(0.37f, h.data(), r1.data(), n);
      k.axpy_f16(0.37f, h.data(), r2.data(), n);
      expect_close(r2, r1, 1e-6f, name);
    }
  }
}

TEST(KernelsSmall, SoftmaxHandlesMaskedEntries) {
  for (isa v : {isa::scalar, isa::avx2, isa::avx512}) {
    if (!detail::isa_supported(v)) continue;
    std::vector<float> x(19, -INFINITY);
    x[3] = 1.0f, x[17] = 1.0f;
    detail::table_for(v).softmax(x.data(), 19);
    for (int i = 0; i < 19; ++i) EXPECT_FLOAT_EQ(x[i], (i == 3 || i == 17) ? 0.5f : 0.0f);
    std::vector<float> all(9, -INFINITY);
    detail::table_for(v).softmax(all.data(), 9);
    for (float f : all) EXPECT_EQ(f, 0.0f);
  }
}

TEST(KernelsSmall, RopeRotatesPairs) {
  // normal mode at pos 1, one head of 4 dims: pair (0,1) by theta=1, pair (2,3) by 1/100.
  float x[4] = {1, 0, 1, 0};
  rope_params p;
  p.n_rot = 4;
  p.freq_base = 10000.0f;
  rope(x, 1, 4, 1, p);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[2], std::cos(0.01), 1e-6);
  EXPECT_NEAR(x[3], std::sin(0.01), 1e-6);
  float y[4] = {1, 1, 0, 0};  // neox: pairs (0,2), (1,3)
  p.mode = rope_mode::neox;
  rope(y, 1, 4, 1, p);
  EXPECT_NEAR(y[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(y[2], std::sin(1.0), 1e-6);
  EXPECT_NEAR(y[1], std::cos(0.01), 1e-6);
  EXPECT_NEAR(y[3], std::sin(0.01), 1e-6);
  float z[4] = {1, 0, 1, 0};  // position 0 is the identity
  p.mode = rope_mode::normal;
  rope(z, 1, 4, 0, p);
  EXPECT_FLOAT_EQ(z[0], 1.0f);
  EXPECT_FLOAT_EQ(z[1], 0.0f);
}

// ---- thread pool --------------------------------------------------------------------------------
TEST(KernelsThreadPool, RunsEveryIndexAndBarrierOrdersPhases) {
  for (int n : {1, 2, 4}) {
    thread_pool pool(n);
    EXPECT_EQ(pool.size(), n);
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      std::atomic<int> phase1{0};
      std::atomic<bool> ordered{true};
      pool.run([&](int i, int total) {
        EXPECT_EQ(total, n);
        seen[static_cast<size_t>(i)]++;
        phase1.fetch_add(1);
        pool.barrier();
        if (phase1.load() != n) ordered = false;
        pool.barrier();
      });
      for (int s : seen) ASSERT_EQ(s, 1);
      ASSERT_TRUE(ordered.load());
    }
  }
}

// Grouped attention: the AVX-512 kernel against the scalar reference on random paged caches:
// head dims 64 and 128 (SIMD) and 24 (falls back), groups of 1, 3 and 4 heads, odd position
// ranges that start inside a block (sliding window) and end mid-block, blocks out of order.
// Tolerance |d| <= 2e-3 * max|V| + 1e-6: the scores differ only in summation order (~1e-6), but
// the F16 accumulator can then round the other way (one F16 ulp, 2^-11 relative) at some
// positions, and the exp polynomial is ~2 ulp from std::exp.
TEST(KernelsAttention, GroupKernelMatchesScalarReference) {
  if (!detail::isa_supported(isa::avx512)) GTEST_SKIP() << "no AVX-512 on this CPU";
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int hd : {64, 128, 24}) {
    for (int nq : {1, 3, 4}) {
      const int n_kv_heads = 2, bt = 16, n_blocks = 6;
      const int64_t kvd = int64_t{n_kv_heads} * hd;
      std::vector<uint16_t> k(static_cast<size_t>(n_blocks * bt * kvd)), v(k.size());
      for (auto& x : k) x = f32_to_f16(nd(rng));
      float vmax = 0;
      for (auto& x : v) {
        x = f32_to_f16(nd(rng));
        vmax = std::max(vmax, std::fabs(f16_to_f32(x)));
      }
      std::vector<const uint16_t*> kb, vb;
      for (int b : {3, 0, 5, 1, 4, 2}) {  // the sequence's block table, not in storage order
        kb.push_back(k.data() + static_cast<size_t>(b) * bt * kvd);
        vb.push_back(v.data() + static_cast<size_t>(b) * bt * kvd);
      }
      const auto q = random_floats(static_cast<size_t>(nq * hd), 6, 2.0f);
      for (auto [p0, p1] : {std::pair{0, 0}, std::pair{0, 36}, std::pair{5, 94}, std::pair{17, 40}}) {
        attn_group_args a;
        a.q = q.data();
        a.n_q = nq;
        a.head_dim = hd;
        a.k_blocks = kb.data();
        a.v_blocks = vb.data();
        a.block_tokens = bt;
        a.row_stride = kvd;
        a.head_offset = hd;  // the second KV head
        a.p0 = p0, a.p1 = p1;
        a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
        std::vector<float> scratch(attn_scratch_floats(nq, p1 - p0 + 1, hd), NAN);
        std::vector<float> ref(static_cast<size_t>(nq * hd)), got(ref.size(), NAN);
        a.scratch = scratch.data();
        a.out = ref.data();
        detail::attn_group_ref(a);
        a.out = got.data();
        detail::attn_group_avx512(a);
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_NEAR(got[i], ref[i], 2e-3f * vmax + 1e-6f) << "hd=" << hd << " nq=" << nq << " p0=" << p0 << " p1=" << p1 << " i=" << i;
        if (p1 == p0) {  // one position: softmax weight 1, out = V row (rounded to F16)
          for (int d = 0; d < hd; ++d)
            ASSERT_EQ(ref[static_cast<size_t>(d)], f16_to_f32(vb[0][hd + d]));
        }
      }
    }
  }
}

TEST(KernelsDispatch, PicksASupportedIsa) {
  const auto name = kernels_isa();
  EXPECT_TRUE(name == "scalar" || name == "avx2" || name == "avx512" || name == "avx512+amx");
  EXPECT_TRUE(detail::isa_supported(detail::active().id));
}

}  // namespace
}  // namespace fp::engine
