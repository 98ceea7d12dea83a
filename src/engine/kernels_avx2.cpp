// AVX2 + FMA + F16C variant of the kernels (compiled with those flags for this file only, see
// CMakeLists.txt); selected at run time by dispatch.cpp.
#define FP_SIMD_VNNI 0
#include "engine/kernels_simd_impl.hpp"

namespace fp::engine::detail {
const kernel_table& table_avx2() noexcept {
  static const kernel_table t{isa::avx2, quantize_act, gemm, f16_to_f32_row, f32_to_f16_row,
                              rmsnorm, softmax, silu_mul, dot_f32, dot_f32_f16, axpy_f16};
  return t;
}
}  // namespace fp::engine::detail
