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
