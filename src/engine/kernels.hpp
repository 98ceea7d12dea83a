// Compute kernels of the engine (fp_engine): matrix products on quantised weights, norms, RoPE,
// softmax, SwiGLU, attention helpers over an F16 KV cache, f16/bf16 conversions.
//
// Every kernel has a scalar reference (kernels_scalar.cpp) and SIMD variants (AVX2+FMA+F16C,
// AVX-512 F/BW/VL/VNNI) chosen ONCE at run time in dispatch.cpp; callers never see an #ifdef.
// Shapes are row-major; a "row" is the contiguous dimension (ggml's ne[0]).
//
// Matrix product convention (ggml's mul_mat):
//   W: (rows, cols) stored as `rows` rows of `cols` elements each in type `type`
//   x: (n_tokens, cols) float, row stride ldx (>= cols)
//   y: (n_tokens, rows) float, row stride ldy (>= rows);  y[t][r] = sum_c W[r][c] * x[t][c]
// Quantised weights take activations quantised to 8 bits once per call (per 32-block for
// Q4_0/Q8_0, per 256-super-block for the K-quants, as ggml's Q8_0/Q8_K) and use integer dot
// products; F32/F16/BF16 weights use float dot products. Rows are split across the pool's threads
// and several tokens are processed per weight load (prefill reads each weight once per tile).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fp::engine {

class thread_pool;

// ggml tensor types; numbering = GGUF tensor type ids (ggml.h).
enum class ggml_type : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15, bf16 = 30,
};

// True for the types the kernels compute with: f32 f16 bf16 q4_0 q8_0 q4_k q5_k q6_k.
bool type_supported(ggml_type t) noexcept;
std::string_view type_name(ggml_type t) noexcept;      // "F32", "Q4_K", ... "?" if unknown
int64_t type_block_elems(ggml_type t) noexcept;        // 1 for f32/f16/bf16; 32; 256. 0 if unknown
int64_t type_block_bytes(ggml_type t) noexcept;        // bytes per block; 0 if unknown
// Bytes of a row of n elements; 0 if unsupported or n is not a multiple of the block size.
int64_t type_row_bytes(ggml_type t, int64_t n) noexcept;

// ---- conversions ------------------------------------------------------------------------------
float f16_to_f32(uint16_t h) noexcept;   // exact
uint16_t f32_to_f16(float f) noexcept;   // round to nearest even; overflow -> inf; NaN kept
float bf16_to_f32(uint16_t h) noexcept;  // exact
uint16_t f32_to_bf16(float f) noexcept;  // round to nearest even
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) noexcept;
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) noexcept;

// ---- (de)quantisation ---------------------------------------------------------------------------
// src holds n elements of type t (n a multiple of the block size). Exactly as ggml defines it.
void dequantize_row(ggml_type t, const void* src, float* dst, int64_t n) noexcept;
// Reference quantisers (f32/f16/bf16/q4_0/q8_0/q4_k/q5_k/q6_k): dst gets type_row_bytes(t, n).
// Used by make-model and the tests; not on the hot path. Returns false for other types.
bool quantize_row(ggml_type t, const float* src, void* dst, int64_t n) noexcept;

// ---- matrix product -----------------------------------------------------------------------------
struct weight_view {
  ggml_type type = ggml_type::f32;
  int64_t rows = 0;          // output features
  int64_t cols = 0;          // input features (row length, a multiple of the block size)
  const void* data = nullptr;  // rows * type_row_bytes(type, cols) bytes
  int64_t row_stride = 0;    // bytes between rows; 0 = type_row_bytes(type, cols)
};

// y = x W^T as described above. Allocates nothing after warm-up (per-thread scratch is reused).
// Must not be called concurrently on the same pool.
void matmul(const weight_view& w, const float* x, int64_t ldx, float* y, int64_t ldy,
            int n_tokens, thread_pool& pool) noexcept;
inline void matmul(const weight_view& w, const float* x, float* y, int n_tokens,
                   thread_pool& pool) noexcept {
  matmul(w, x, w.cols, y, w.rows, n_tokens, pool);
}
// Upper bound of the scratch matmul keeps (thread-local, grown once, never shrunk) for products
// of up to max_tokens tokens into matrices of at most max_cols columns: the calling thread's
// activation buffer plus every computing thread's weight panel. Part of the engine's documented
// memory constant (docs/design/engine.md, Memory).
size_t matmul_scratch_bound(int64_t max_cols, int max_tokens, int n_threads) noexcept;
// Single-threaded row range [row_begin, row_end) of the same product (for callers that split
// work themselves, e.g. several small matrices in one parallel region). Same conventions.
void matmul_rows(const weight_view& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                 int n_tokens, int64_t row_begin, int64_t row_end) noexcept;

// Embedding lookup: dst[0..cols) = row `row` of w, dequantised.
void get_row(const weight_view& w, int64_t row, float* dst) noexcept;

// ---- small kernels ------------------------------------------------------------------------------
// y = x / sqrt(mean(x^2) + eps) * weight   (weight may be nullptr = ones). y may alias x.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps) noexcept;
// In place: x = exp(x - max) / sum. Entries equal to -inf get 0.
void softmax(float* x, int64_t n) noexcept;
// out = silu(gate) * up; out may alias gate or up.
void silu_mul(const float* gate, const float* up, float* out, int64_t n) noexcept;
// y += x
void vec_add(float* y, const float* x, int64_t n) noexcept;
// y *= s
void vec_scale(float* y, float s, int64_t n) noexcept;
float dot_f32(const float* a, const float* b, int64_t n) noexcept;

// Attention over an F16 KV cache.
// sum_i q[i] * k[i]
float dot_f32_f16(const float* q, const uint16_t* k, int64_t n) noexcept;
// acc[i] += a * v[i]
void axpy_f16(float a, const uint16_t* v, float* acc, int64_t n) noexcept;

// Attention of the n_q query heads that share one KV head (a GQA group) over positions [p0, p1]
// of one sequence in a paged F16 cache, with llama.cpp's CPU flash-attention numerics: q rounded
// to F16 before the K dot products, scores scaled, an online softmax whose V accumulator is rounded
// to F16 after every position (out = acc / sum). Position p's K row of this head is
// k_blocks[p / block_tokens] + (p % block_tokens) * row_stride + head_offset (V likewise).
struct attn_group_args {
  const float* q = nullptr;  // n_q heads of head_dim floats, consecutive
  int n_q = 1, head_dim = 0;
  const uint16_t* const* k_blocks = nullptr;
  const uint16_t* const* v_blocks = nullptr;
  int block_tokens = 16;
  int64_t row_stride = 0;   // elements between consecutive tokens of a block (the cache's kv_dim)
  int64_t head_offset = 0;  // elements: this KV head's first element in a token row
  int p0 = 0, p1 = 0;       // inclusive
  float scale = 1.0f;
  float* out = nullptr;      // n_q x head_dim
  float* scratch = nullptr;  // attn_scratch_floats(n_q, p1 - p0 + 1, head_dim) floats
};
size_t attn_scratch_floats(int n_q, int n_pos, int head_dim) noexcept;
void attention_group(const attn_group_args& a) noexcept;

// RoPE, in place, over n_heads heads of head_dim floats each (contiguous), at position pos.
// Only the first n_rot dims of each head rotate (n_rot even, <= head_dim).
//   normal (llama):  pairs (x[2i], x[2i+1])
//   neox (qwen2...): pairs (x[i], x[i + n_rot/2])
// theta_i = pos * freq_scale * freq_base^(-2i/n_rot) / (freq_factors ? freq_factors[i] : 1)
enum class rope_mode { normal, neox };
struct rope_params {
  int n_rot = 0;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;             // 1 / linear scaling factor
  const float* freq_factors = nullptr;  // n_rot/2 entries (llama-3 "rope_freqs"), optional
  rope_mode mode = rope_mode::normal;
};
void rope(float* x, int n_heads, int head_dim, int64_t pos, const rope_params& p) noexcept;

// Name of the instruction set the dispatcher picked: "scalar", "avx2", "avx512" or "avx512+amx"
// (AMX BF16 tiles for matrix products of >= 16 tokens; FASTPATH_AMX=0 turns them off).
std::string_view kernels_isa() noexcept;

}  // namespace fp::engine
