// The one place that knows about instruction sets: a table of kernel entry points per variant,
// and the run-time choice (cpuid via __builtin_cpu_supports). Private to src/engine and tests.
#pragma once

#include <cstdint>
#include <string_view>

#include "engine/kernels.hpp"

namespace fp::engine::detail {

enum class isa { scalar, avx2, avx512 };
std::string_view isa_name(isa i) noexcept;

struct kernel_table {
  isa id;
  // Quantise one token row of activations for weights of type wt (layout: quant::act_kind_for).
  void (*quantize_act)(ggml_type wt, const float* x, void* row, int64_t cols);
  // Rows [r0, r1) of y = x W^T for n_tokens tokens. `act` is the quantised activation rows
  // (stride act_stride bytes) for quantised weights, or the float x (stride act_stride floats)
  // for f32/f16/bf16 weights.
  void (*gemm)(const weight_view& w, const void* act, int64_t act_stride, int n_tokens, float* y,
               int64_t ldy, int64_t r0, int64_t r1);
  void (*f16_to_f32_row)(const uint16_t* src, float* dst, int64_t n);
  void (*f32_to_f16_row)(const float* src, uint16_t* dst, int64_t n);
  void (*rmsnorm)(const float* x, const float* weight, float* y, int64_t n, float eps);
  void (*softmax)(float* x, int64_t n);
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  float (*dot_f32)(const float* a, const float* b, int64_t n);
  float (*dot_f32_f16)(const float* q, const uint16_t* k, int64_t n);
  void (*axpy_f16)(float a, const uint16_t* v, float* acc, int64_t n);

  // Optional prefill path (nullptr in variants without one). When prefill_supported(w.type,
  // w.cols) and n_tokens >= prefill_min_tokens, matmul re-lays each quantised activation row with
  // prefill_act (into rows of act_row_bytes(q8_32, cols) bytes) and calls prefill_gemm instead of gemm on
  // row ranges that are multiples of 16 (except the last). prefill_gemm repacks each 16-row block
  // of weights once and streams every token through it.
  bool (*prefill_supported)(ggml_type wt, int64_t cols) = nullptr;
  void (*prefill_act)(ggml_type wt, const void* src, void* dst, int64_t cols) = nullptr;
  void (*prefill_gemm)(const weight_view& w, const void* act, int64_t act_stride, int n_tokens,
                       float* y, int64_t ldy, int64_t r0, int64_t r1) = nullptr;
};
inline constexpr int prefill_min_tokens = 16;

// AMX prefill path (kernels_amx.cpp): BF16 tiles, weights dequantised per 32-row panel.
// act: token blocks [tb0, tb1) (multiples of 16) of x -> BF16 pairs [cols/2][n_pad][2];
// gemm: rows [r0, r1) of y for n_tokens tokens from that buffer (n_pad = n_tokens rounded up to 16).
struct amx_ops {
  bool (*supported)(ggml_type wt, int64_t cols);
  void (*act)(const float* x, int64_t ldx, int n_tokens, int64_t cols, int n_pad, int tb0, int tb1,
              uint16_t* dst);
  void (*gemm)(const weight_view& w, const uint16_t* act, int n_pad, int n_tokens, float* y,
               int64_t ldy, int64_t r0, int64_t r1);
};
inline constexpr int amx_min_tokens = 16;
// cpuid has AMX-TILE, AMX-BF16 and AVX512-BF16 and the OS granted the tile-data permission
// (asked once, on the first call).
bool amx_available() noexcept;
const amx_ops& amx_table() noexcept;  // only call if amx_available()
// The AMX path the matrix product uses: nullptr unless amx_available(), the active table is
// avx512 and FASTPATH_AMX is not "0" (read once).
const amx_ops* active_amx() noexcept;

// Grouped attention (kernels.hpp attention_group): the scalar reference, and the AVX-512 kernel
// (head_dim a multiple of 16 up to 256; anything else falls back to the reference).
void attn_group_ref(const attn_group_args& a) noexcept;
void attn_group_avx512(const attn_group_args& a) noexcept;  // only if isa_supported(isa::avx512)
using attn_group_fn = void (*)(const attn_group_args&) noexcept;
attn_group_fn active_attn() noexcept;  // follows active(): the AVX-512 kernel iff it is avx512

const kernel_table& table_scalar() noexcept;
const kernel_table& table_avx2() noexcept;    // only call if isa_supported(isa::avx2)
const kernel_table& table_avx512() noexcept;  // only call if isa_supported(isa::avx512)
bool isa_supported(isa i) noexcept;
const kernel_table& table_for(isa i) noexcept;  // falls back to scalar if unsupported
// The active table: the best supported ISA, or FASTPATH_ISA=scalar|avx2|avx512 from the
// environment (read once; a lower one than supported is honoured, a higher one is not).
const kernel_table& active() noexcept;

}  // namespace fp::engine::detail
