// Public header of src/metrics: counters, gauges and histograms with labels, and the Prometheus
// text exposition. Updates are lock-free atomics; get-or-create takes a lock, so callers cache the
// returned reference (it stays valid for the process lifetime).
#pragma once

#include <atomic>
#include <memory>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fp::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
 public:
  void inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class gauge {
 public:
  void set(double v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept;
  double value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Observations go to a per-thread shard (the first 64 threads that observe get one each; later
// ones share one more) updated with plain relaxed stores: no locked read-modify-write and no
// cache line bouncing between worker threads on the request path. Readers sum the shards, so a
// read racing an observe may see it in some fields and not yet in others.
class histogram {
 public:
  explicit histogram(std::span<const double> upper_bounds);
  ~histogram();
  histogram(const histogram&) = delete;
  histogram& operator=(const histogram&) = delete;
  void observe(double v) noexcept;
  uint64_t count() const noexcept;
  double sum() const noexcept;
  std::span<const double> bounds() const noexcept { return bounds_; }
  // Non-cumulative count of bucket i (i == bounds().size() is the +Inf bucket).
  uint64_t bucket(size_t i) const noexcept;
  // Estimated quantile (linear interpolation inside the bucket), q in [0,1]; NaN when empty.
  double quantile(double q) const noexcept;

 private:
  struct shard;
  static constexpr size_t max_shards = 64;
  shard* own_shard() noexcept;  // this thread's (created on first use); null: use shared_
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<shard*>[]> shards_;
  std::unique_ptr<shard> shared_;  // threads beyond max_shards, with atomic read-modify-writes
};

counter& get_counter(std::string_view name, std::string_view help, const labels& l = {});
gauge& get_gauge(std::string_view name, std::string_view help, const labels& l = {});
std::span<const double> latency_buckets_seconds();  // 50 µs .. 60 s
histogram& get_histogram(std::string_view name, std::string_view help, const labels& l = {},
                         std::span<const double> buckets = latency_buckets_seconds());

// Prometheus text exposition format 0.0.4, families sorted by name.
std::string render_prometheus();

}  // namespace fp::metrics
