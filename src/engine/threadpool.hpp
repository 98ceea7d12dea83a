// A fixed pool of worker threads for splitting one kernel call (a matrix product, a batch of
// attention heads) across cores. The calling thread takes part as thread 0, so a pool of size 1
// runs everything inline. Dispatch and completion spin briefly (the next call usually comes
// within microseconds during a forward pass) and then sleep on an atomic wait, so an idle pool
// costs no CPU.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace fp::engine {

class thread_pool {
 public:
  // n_threads >= 1 counts the caller; n_threads - 1 workers are started.
  explicit thread_pool(int n_threads);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  int size() const noexcept { return n_threads_; }

  // Runs f(thread_index, n_threads) on every thread of the pool (the caller is index 0) and
  // returns when all have finished. Not reentrant: call from one thread at a time, never from
  // inside f.
  template <class F>
  void run(F&& f) {
    using fn_t = std::remove_reference_t<F>;
    run_impl([](void* ctx, int i, int n) { (*static_cast<fn_t*>(ctx))(i, n); }, &f);
  }

  // A barrier for all threads of the pool, callable only from inside run().
  void barrier() noexcept;

  // Default thread count for this machine (hardware concurrency, at least 1).
  static int default_threads() noexcept;

 private:
  using task_fn = void (*)(void*, int, int);
  void run_impl(task_fn fn, void* ctx);
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  task_fn fn_ = nullptr;
  void* ctx_ = nullptr;
  alignas(64) std::atomic<uint32_t> generation_{0};  // bumped to start a run
  alignas(64) std::atomic<int> pending_{0};           // workers still running the current task
  alignas(64) std::atomic<int> barrier_count_{0};
  alignas(64) std::atomic<uint32_t> barrier_phase_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace fp::engine
