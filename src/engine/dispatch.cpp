// Run-time choice of the kernel variant (the only place that looks at the CPU), and the public
// kernel entry points of kernels.hpp, including the threaded matrix product.
#include "engine/dispatch.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "engine/quant.hpp"
#include "engine/threadpool.hpp"

namespace fp::engine {
namespace detail {

std::string_view isa_name(isa i) noexcept {
  switch (i) {
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    default: return "scalar";
  }
}

bool isa_supported(isa i) noexcept {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  switch (i) {
    case isa::scalar: return true;
    case isa::avx2: return avx2;
    case isa::avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return i == isa::scalar;
#endif
}

const kernel_table& table_for(isa i) noexcept {
  if (!isa_supported(i)) return table_scalar();
  switch (i) {
    case isa::avx2: return table_avx2();
    case isa::avx512: return table_avx512();
    default: return table_scalar();
  }
}

namespace {
const kernel_table& choose() noexcept {
  isa best = isa::scalar;
  if (isa_supported(isa::avx512)) best = isa::avx512;
  else if (isa_supported(isa::avx2)) best = isa::avx2;
  if (const char* env = std::getenv("FASTPATH_ISA")) {
    const std::string_view want(env);
    if (want == "scalar") best = isa::scalar;
    else if (want == "avx2" && best == isa::avx512) best = isa::avx2;
  }
  return table_for(best);
}
}  // namespace

const kernel_table& active() noexcept {
  static const kernel_table& t = choose();
  return t;
}

attn_group_fn active_attn() noexcept {
  static const attn_group_fn f = active().id == isa::avx512 ? &attn_group_avx512 : &attn_group_ref;
  return f;
}

const amx_ops* active_amx() noexcept {
  static const amx_ops* t = [] () -> const amx_ops* {
    if (active().id != isa::avx512) return nullptr;
    if (const char* env = std::getenv("FASTPATH_AMX"); env && std::string_view(env) == "0") return nullptr;
#if defined(__x86_64__)
    if (amx_available()) return &amx_table();
#endif
    return nullptr;
  }();
  return t;
}

}  // namespace detail

std::string_view kernels_isa() noexcept {
  return detail::active_amx() ? std::string_view("avx512+amx") : detail::isa_name(detail::active().id);
}

// ---- matrix product -----------------------------------------------------------------------------
namespace {

// Quantised activations of the current call; grows, never shrinks (no allocation once warm).
struct act_scratch {
  std::vector<uint8_t> buf;
  uint8_t* get(size_t bytes) {
    if (buf.size() < bytes + 64) buf.resize(bytes + 64);
    auto p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t{63});
  }
};
thread_local act_scratch t_scratch;
thread_local act_scratch t_prefill_row;  // one natural-layout row before prefill_act

bool use_prefill(const detail::kernel_table& k, const weight_view& w, int n_tokens) noexcept {
  return k.prefill_gemm && n_tokens >= detail::prefill_min_tokens && k.prefill_supported(w.type, w.cols);
}
// Prefill activation rows always use the act32 size (enough for every prefill layout).
int64_t prefill_stride(quant::act_kind kind, int64_t cols, bool prefill) noexcept {
  return prefill ? quant::act_row_bytes(quant::act_kind::q8_32, cols) : quant::act_row_bytes(kind, cols);
}

const detail::amx_ops* use_amx(const weight_view& w, int n_tokens) noexcept {
  const auto* ax = detail::active_amx();
  return ax && n_tokens >= detail::amx_min_tokens && ax->supported(w.type, w.cols) ? ax : nullptr;
}
int amx_pad(int n_tokens) noexcept { return (n_tokens + 15) / 16 * 16; }

int64_t weight_stride(const weight_view& w) noexcept {
  return w.row_stride ? w.row_stride : type_row_bytes(w.type, w.cols);
}

// Rows per work item: enough to amortise the scheduling, small enough to balance two threads
// that share the machine with other work.
int64_t chunk_rows(int64_t rows, int n_threads) noexcept {
  const int64_t c = rows / (static_cast<int64_t>(n_threads) * 8);
  return std::clamp<int64_t>(c / 16 * 16, 16, 512);
}

}  // namespace

void matmul_rows(const weight_view& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                 int n_tokens, int64_t row_begin, int64_t row_end) noexcept {
  const auto& k = detail::active();
  const auto kind = quant::act_kind_for(w.type);
  if (const auto* ax = use_amx(w, n_tokens)) {
    const int n_pad = amx_pad(n_tokens);
    auto* act = reinterpret_cast<uint16_t*>(t_scratch.get(static_cast<size_t>(n_pad) * static_cast<size_t>(w.cols) * 2));
    ax->act(x, ldx, n_tokens, w.cols, n_pad, 0, n_pad, act);
    ax->gemm(w, act, n_pad, n_tokens, y, ldy, row_begin, row_end);
    return;
  }
  if (kind == quant::act_kind::none) {
    k.gemm(w, x, ldx, n_tokens, y, ldy, row_begin, row_end);
    return;
  }
  const bool prefill = use_prefill(k, w, n_tokens);
  const int64_t arb = prefill_stride(kind, w.cols, prefill);
  uint8_t* act = t_scratch.get(static_cast<size_t>(arb * n_tokens));
  uint8_t* tmp = prefill ? t_prefill_row.get(static_cast<size_t>(quant::act_row_bytes(kind, w.cols))) : nullptr;
  for (int t = 0; t < n_tokens; ++t) {
    if (prefill) {
      k.quantize_act(w.type, x + t * ldx, tmp, w.cols);
      k.prefill_act(w.type, tmp, act + t * arb, w.cols);
    } else {
      k.quantize_act(w.type, x + t * ldx, act + t * arb, w.cols);
    }
  }
  if (prefill) k.prefill_gemm(w, act, arb, n_tokens, y, ldy, row_begin, row_end);
  else k.gemm(w, act, arb, n_tokens, y, ldy, row_begin, row_end);
}

void matmul(const weight_view& w, const float* x, int64_t ldx, float* y, int64_t ldy,
            int n_tokens, thread_pool& pool) noexcept {
  if (n_tokens <= 0 || w.rows <= 0) return;
  const int nt = pool.size();
  if (nt == 1) {
    matmul_rows(w, x, ldx, y, ldy, n_tokens, 0, w.rows);
    return;
  }
  const int64_t chunk = chunk_rows(w.rows, nt);
  const int64_t n_chunks = (w.rows + chunk - 1) / chunk;
  std::atomic<int64_t> next{0};
  if (const auto* ax = use_amx(w, n_tokens)) {
    // BF16 activations once (16-token blocks split across the threads), then row chunks.
    const int n_pad = amx_pad(n_tokens);
    auto* abuf = reinterpret_cast<uint16_t*>(t_scratch.get(static_cast<size_t>(n_pad) * static_cast<size_t>(w.cols) * 2));
    pool.run([&](int ti, int n) {
      for (int tb = ti * 16; tb < n_pad; tb += n * 16) ax->act(x, ldx, n_tokens, w.cols, n_pad, tb, tb + 16, abuf);
      pool.barrier();
      for (;;) {
        const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
        if (c >= n_chunks) break;
        ax->gemm(w, abuf, n_pad, n_tokens, y, ldy, c * chunk, std::min(w.rows, c * chunk + chunk));
      }
    });
    return;
  }
  const auto& k = detail::active();
  const auto kind = quant::act_kind_for(w.type);
  const void* act = x;
  int64_t act_stride = ldx;
  uint8_t* qbuf = nullptr;
  const bool prefill = kind != quant::act_kind::none && use_prefill(k, w, n_tokens);
  if (kind != quant::act_kind::none) {
    act_stride = prefill_stride(kind, w.cols, prefill);
    qbuf = t_scratch.get(static_cast<size_t>(act_stride * n_tokens));
    act = qbuf;
  }
  pool.run([&](int ti, int n) {
    if (qbuf) {  // quantise the activations once, split by token, then everyone reads them
      uint8_t* tmp = prefill ? t_prefill_row.get(static_cast<size_t>(quant::act_row_bytes(kind, w.cols))) : nullptr;
      for (int t = ti; t < n_tokens; t += n) {
        uint8_t* dst = qbuf + t * act_stride;
        if (prefill) {
          k.quantize_act(w.type, x + t * ldx, tmp, w.cols);
          k.prefill_act(w.type, tmp, dst, w.cols);
        } else {
          k.quantize_act(w.type, x + t * ldx, dst, w.cols);
        }
      }
      pool.barrier();
    }
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_chunks) break;
      const int64_t r0 = c * chunk, r1 = std::min(w.rows, r0 + chunk);
      if (prefill) k.prefill_gemm(w, act, act_stride, n_tokens, y, ldy, r0, r1);
      else k.gemm(w, act, act_stride, n_tokens, y, ldy, r0, r1);
    }
  });
}

size_t matmul_scratch_bound(int64_t max_cols, int max_tokens, int n_threads) noexcept {
  const auto cols = static_cast<size_t>(max_cols);
  const auto pad = static_cast<size_t>((max_tokens + 15) / 16 * 16);
  // calling thread: BF16 activations (AMX, 2 bytes/element) or 8-bit rows (<= 1.25 bytes/element
  // + 64-byte alignment), one natural-layout row for the prefill re-layout
  const size_t act = std::max(pad * cols * 2, static_cast<size_t>(max_tokens) * (cols * 5 / 4 + 128)) + cols * 2 + 256;
  // per computing thread: AMX panels (<= max(1 MiB, 32 rows) + 4 KiB of C tiles) or the VNNI
  // prefill's repacked 16-row block with its scales (16 x cols x (1 + 8/32) bytes)
  const size_t panel = std::max<size_t>(std::max<size_t>(size_t{1} << 20, 32 * cols * 2) + 4096, 16 * cols * 5 / 4 + 64);
  return act + static_cast<size_t>(n_threads) * panel;
}

void get_row(const weight_view& w, int64_t row, float* dst) noexcept {
  const auto* p = static_cast<const uint8_t*>(w.data) + row * weight_stride(w);
  dequantize_row(w.type, p, dst, w.cols);
}

// ---- small kernels ------------------------------------------------------------------------------
void f16_to_f32_row(const uint16_t* src, float* dst, int64_t n) noexcept {
  detail::active().f16_to_f32_row(src, dst, n);
}
void f32_to_f16_row(const float* src, uint16_t* dst, int64_t n) noexcept {
  detail::active().f32_to_f16_row(src, dst, n);
}
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps) noexcept {
  detail::active().rmsnorm(x, weight, y, n, eps);
}
void softmax(float* x, int64_t n) noexcept { detail::active().softmax(x, n); }
void silu_mul(const float* gate, const float* up, float* out, int64_t n) noexcept {
  detail::active().silu_mul(gate, up, out, n);
}
void vec_add(float* y, const float* x, int64_t n) noexcept {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}
void vec_scale(float* y, float s, int64_t n) noexcept {
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}
float dot_f32(const float* a, const float* b, int64_t n) noexcept {
  return detail::active().dot_f32(a, b, n);
}
float dot_f32_f16(const float* q, const uint16_t* k, int64_t n) noexcept {
  return detail::active().dot_f32_f16(q, k, n);
}
void axpy_f16(float a, const uint16_t* v, float* acc, int64_t n) noexcept {
  detail::active().axpy_f16(a, v, acc, n);
}

size_t attn_scratch_floats(int n_q, int n_pos, int head_dim) noexcept {
  // scores, exp(m_prev - m), exp(s - m) per head and position, the sums, q rounded to F16
  return 3 * static_cast<size_t>(n_q) * static_cast<size_t>(n_pos) +
         static_cast<size_t>(n_q + 1) * (static_cast<size_t>(head_dim) + 16) + 32;
}
void attention_group(const attn_group_args& a) noexcept { detail::active_attn()(a); }

void rope(float* x, int n_heads, int head_dim, int64_t pos, const rope_params& p) noexcept {
  const int n_rot = p.n_rot > 0 ? std::min(p.n_rot, head_dim) : head_dim;
  const int half = n_rot / 2;
  // theta_i = pos * scale * base^(-2i/n_rot); computed in double once per call, shared by heads.
  constexpr int k_max_half = 512;
  float cs[k_max_half], sn[k_max_half];
  const int nh = std::min(half, k_max_half);
  for (int i = 0; i < nh; ++i) {
    double theta = static_cast<double>(pos) * p.freq_scale *
                   std::pow(static_cast<double>(p.freq_base), -2.0 * i / n_rot);
    if (p.freq_factors) theta /= p.freq_factors[i];
    cs[i] = static_cast<float>(std::cos(theta));
    sn[i] = static_cast<float>(std::sin(theta));
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < nh; ++i) {
      const int a = p.mode == rope_mode::neox ? i : 2 * i;
      const int b = p.mode == rope_mode::neox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * cs[i] - x1 * sn[i];
      v[b] = x0 * sn[i] + x1 * cs[i];
    }
  }
}

}  // namespace fp::engine
