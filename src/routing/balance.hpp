// Deployment health (latency EWMAs, in-flight count, circuit breaker, TTFT quantile), the
// latency-aware power-of-two-choices balancer, retry/hedge budgets and prefix affinity.
// Included through routing/routing.hpp. Every time is an explicit `now_ns` from fp::clock so tests
// drive a fake clock.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace fp::routing {

// ---- circuit breaker ------------------------------------------------------------------------------
struct breaker_config {
  int consecutive_failures = 5;       // open after this many failures in a row
  double failure_rate = 0.5;          // or when this share of the window failed ...
  int window = 20;                    // ... over the last `window` outcomes
  int min_requests = 10;              // ... once the window holds at least this many
  int64_t open_ms = 5000;             // stay open this long, then half-open
  int64_t max_open_ms = 60000;        // open time doubles on each failed probe, up to this
  int half_open_probes = 1;           // concurrent trial requests while half-open
  int probe_successes = 2;            // successes needed to close again
};

enum class breaker_state { closed, open, half_open };
std::string_view breaker_state_name(breaker_state s) noexcept;

// Not thread-safe by itself; deployment_health serialises access.
class circuit_breaker {
 public:
  explicit circuit_breaker(breaker_config c = {}) : cfg_(c) {}
  // May a request start now? In half-open, a true reserves a probe slot (release it with
  // on_success/on_failure/on_abandon).
  bool try_acquire(int64_t now_ns) noexcept;
  // Without reserving: would a request be admitted now (for choosing candidates)?
  bool admits(int64_t now_ns) const noexcept;
  void on_success(int64_t now_ns) noexcept;
  void on_failure(int64_t now_ns) noexcept;
  void on_abandon() noexcept;  // a request that ended without a verdict (cancelled hedge loser)
  breaker_state state(int64_t now_ns) const noexcept;
  uint64_t opened_total() const noexcept { return opened_total_; }

 private:
  void open(int64_t now_ns) noexcept;
  void record(bool ok) noexcept;
  breaker_config cfg_;
  breaker_state state_ = breaker_state::closed;
  int64_t open_until_ns_ = 0;
  int64_t open_ns_ = 0;  // current open period
  int consecutive_ = 0;
  int probes_in_flight_ = 0;
  int probe_ok_ = 0;
  std::array<uint8_t, 256> window_{};  // 1 = failure
  int window_len_ = 0, window_pos_ = 0, window_failures_ = 0;
  uint64_t opened_total_ = 0;
};

// ---- per-deployment health --------------------------------------------------------------------------
struct health_config {
  double ewma_alpha = 0.2;            // weight of a new sample
  // Before any sample (and what stale estimates relax towards). Optimistic on purpose: an unknown
  // or long-unused deployment looks cheap, so it gets tried and measured.
  double prior_ttft_ms = 0;
  double prior_per_token_ms = 0;
  double stale_after_ms = 10000;      // estimates relax towards the prior with this time constant
                                      // once no sample arrived (so a slow deployment gets re-tried)
  breaker_config breaker;
};

struct health_snapshot {
  double ttft_ms = 0, per_token_ms = 0;
  int in_flight = 0;
  breaker_state state = breaker_state::closed;
  uint64_t samples = 0;
  double p95_ttft_ms = -1;  // -1 until enough samples
};

// Thread-safe (one small mutex per deployment).
class deployment_health {
 public:
  explicit deployment_health(health_config c = {});
  // A request starts on this deployment (after try_start succeeded).
  bool try_start(int64_t now_ns) noexcept;  // breaker admission + in-flight++ on success
  // Outcomes; each ends one try_start.
  void on_success(int64_t now_ns, int64_t ttft_ns, int64_t completion_tokens,
                  int64_t total_ns) noexcept;
  void on_failure(int64_t now_ns) noexcept;
  void on_first_token(int64_t now_ns, int64_t ttft_ns) noexcept;  // TTFT sample as soon as known
  void on_abandon() noexcept;  // cancelled (hedge loser, client gone): no verdict
  // The upstream said 429: no verdict on health, but no new request before `retry_after_s`.
  void on_rate_limited(int64_t now_ns, double retry_after_s) noexcept;
  int64_t cooldown_until_ns() const noexcept;
  // Expected time to finish a request of `expected_tokens` output tokens, in ms, including queueing
  // behind the in-flight requests.
  double expected_cost_ms(int64_t now_ns, int64_t expected_tokens) const noexcept;
  bool admits(int64_t now_ns) const noexcept;
  // Half-open with a free probe slot: the next request should go here (re-admission needs traffic;
  // cost-based choice alone would never pick a deployment without recent samples).
  bool wants_probe(int64_t now_ns) const noexcept;
  double p95_ttft_ms() const noexcept;  // -1 until 20 samples
  health_snapshot snapshot(int64_t now_ns) const noexcept;

 private:
  double relaxed(double v, double prior, int64_t now_ns) const noexcept;
  health_config cfg_;
  mutable std::mutex mu_;
  circuit_breaker breaker_;
  double ttft_ms_ = -1, per_token_ms_ = -1;
  int64_t last_sample_ns_ = 0;
  int64_t cooldown_until_ns_ = 0;
  int in_flight_ = 0;
  uint64_t samples_ = 0;
  std::array<float, 128> ttft_ring_{};
  size_t ring_len_ = 0, ring_pos_ = 0;
  mutable double p95_cache_ = -1;
  mutable bool p95_dirty_ = true;
};

// ---- balancer ---------------------------------------------------------------------------------------
struct candidate {
  deployment_health* health = nullptr;
  double weight = 1.0;
};

// Power of two choices on expected cost / weight: two distinct candidates are drawn with
// probability proportional to weight among those whose breaker admits a request and that are not
// excluded (already tried for this request); the cheaper wins. A half-open deployment waiting for
// a probe is chosen first. Returns the index or -1.
class p2c_balancer {
 public:
  explicit p2c_balancer(uint64_t seed = std::random_device{}()) : rng_(seed) {}
  int pick(std::span<const candidate> c, int64_t now_ns, int64_t expected_tokens,
           std::span<const uint8_t> excluded = {});

 private:
  std::mutex mu_;
  std::mt19937_64 rng_;
};

// ---- budgets ----------------------------------------------------------------------------------------
// Finagle-style budget: every request deposits `ratio` tokens, each retry (or hedge) withdraws one;
// `min_per_second` tokens accrue with time so low traffic can still retry; the balance is capped
// at `cap`, which bounds a burst of retries (e.g. when every upstream fails at once).
struct budget_config {
  double ratio = 0.2;
  double min_per_second = 1.0;
  double cap = 20;  // maximum balance (burst)
};

class budget {
 public:
  // Starts full (cap): a fresh gateway may retry a little before any traffic has paid for it.
  explicit budget(budget_config c = {}, int64_t now_ns = 0) : cfg_(c), balance_(c.cap), last_ns_(now_ns) {}
  void on_request(int64_t now_ns) noexcept;
  bool try_withdraw(int64_t now_ns) noexcept;
  double balance(int64_t now_ns) noexcept;
  uint64_t requests() const noexcept { return requests_; }
  uint64_t withdrawn() const noexcept { return withdrawn_; }

 private:
  void refill(int64_t now_ns) noexcept;
  budget_config cfg_;
  std::mutex mu_;
  double balance_;
  int64_t last_ns_ = 0;
  uint64_t requests_ = 0, withdrawn_ = 0;
};

// ---- prefix affinity ------------------------------------------------------------------------------
// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018): each replica owns
// `vnodes` points on a ring; a key goes to the first replica clockwise whose load is below
// ceil(load_factor * (total_load + 1) / replicas), so no replica exceeds that bound and keys move
// only when their owner is full or down.
class affinity_ring {
 public:
  affinity_ring(std::span<const std::string> replicas, int vnodes = 64);
  // loads: in-flight per replica; usable: 0 to skip (breaker open, already tried). -1 if none.
  int pick(uint64_t key, std::span<const int> loads, double load_factor,
           std::span<const uint8_t> usable = {}) const noexcept;
  size_t replicas() const noexcept { return n_; }

 private:
  std::vector<std::pair<uint64_t, uint32_t>> ring_;  // point, replica index (sorted)
  size_t n_ = 0;
};

uint64_t hash64(std::string_view s, uint64_t seed = 0) noexcept;

}  // namespace fp::routing
