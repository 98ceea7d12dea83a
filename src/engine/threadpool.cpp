// Spin-then-wait thread pool; see threadpool.hpp.
#include "engine/threadpool.hpp"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FP_CPU_RELAX() _mm_pause()
#else
#define FP_CPU_RELAX() ((void)0)
#endif

namespace fp::engine {

namespace {
// Spin ~2k pause instructions (about 20-100 us: pause takes 10-140 cycles depending on the core)
// before sleeping: long enough to bridge the gap between two kernels of one forward pass, short
// enough not to burn a core that other work on a shared machine could use.
constexpr int k_spin_iterations = 1 << 11;

// Waits until v != old, spinning first. Returns the new value.
template <class T>
T wait_change(std::atomic<T>& v, T old) noexcept {
  for (int i = 0; i < k_spin_iterations; ++i) {
    const T cur = v.load(std::memory_order_acquire);
    if (cur != old) return cur;
    FP_CPU_RELAX();
  }
  for (;;) {
    v.wait(old, std::memory_order_acquire);
    const T cur = v.load(std::memory_order_acquire);
    if (cur != old) return cur;
  }
}
}  // namespace

int thread_pool::default_threads() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

thread_pool::thread_pool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

thread_pool::~thread_pool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    seen = wait_change(generation_, seen);
    if (stop_.load(std::memory_order_acquire)) return;
    fn_(ctx_, index, n_threads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void thread_pool::run_impl(task_fn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);  // publishes fn_/ctx_
  generation_.notify_all();
  fn(ctx, 0, n_threads_);
  for (int i = 0; i < k_spin_iterations; ++i) {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    FP_CPU_RELAX();
  }
  for (;;) {
    const int p = pending_.load(std::memory_order_acquire);
    if (p == 0) return;
    pending_.wait(p, std::memory_order_acquire);
  }
}

void thread_pool::barrier() noexcept {
  if (n_threads_ == 1) return;
  const uint32_t phase = barrier_phase_.load(std::memory_order_acquire);
  if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) == n_threads_ - 1) {
    barrier_count_.store(0, std::memory_order_relaxed);
    barrier_phase_.fetch_add(1, std::memory_order_acq_rel);
    barrier_phase_.notify_all();
    return;
  }
  wait_change(barrier_phase_, phase);
}

}  // namespace fp::engine
