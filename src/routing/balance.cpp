#include <algorithm>
#include <cmath>

#include "routing/routing.hpp"

namespace fp::routing {

// ---- circuit breaker ------------------------------------------------------------------------------

std::string_view breaker_state_name(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "?";
}

breaker_state circuit_breaker::state(int64_t now_ns) const noexcept {
  if (state_ == breaker_state::open && now_ns >= open_until_ns_) return breaker_state::half_open;
  return state_;
}

bool circuit_breaker::admits(int64_t now_ns) const noexcept {
  switch (state(now_ns)) {
    case breaker_state::closed: return true;
    case breaker_state::open: return false;
    case breaker_state::half_open: return probes_in_flight_ < cfg_.half_open_probes;
  }
  return false;
}

bool circuit_breaker::try_acquire(int64_t now_ns) noexcept {
  if (state_ == breaker_state::open && now_ns >= open_until_ns_) {
    state_ = breaker_state::half_open;
    probes_in_flight_ = 0;
    probe_ok_ = 0;
  }
  if (state_ == breaker_state::closed) return true;
  if (state_ == breaker_state::open) return false;
  if (probes_in_flight_ >= cfg_.half_open_probes) return false;
  ++probes_in_flight_;
  return true;
}

void circuit_breaker::record(bool ok) noexcept {
  int w = std::clamp(cfg_.window, 1, static_cast<int>(window_.size()));
  if (window_len_ == w) {
    window_failures_ -= window_[window_pos_];
  } else {
    ++window_len_;
  }
  window_[window_pos_] = ok ? 0 : 1;
  window_failures_ += ok ? 0 : 1;
  window_pos_ = (window_pos_ + 1) % w;
}

void circuit_breaker::open(int64_t now_ns) noexcept {
  state_ = breaker_state::open;
  open_ns_ = open_ns_ == 0 ? cfg_.open_ms * 1000000 : std::min(open_ns_ * 2, cfg_.max_open_ms * 1000000);
  open_until_ns_ = now_ns + open_ns_;
  probes_in_flight_ = 0;
  probe_ok_ = 0;
  ++opened_total_;
}

void circuit_breaker::on_success(int64_t now_ns) noexcept {
  consecutive_ = 0;
  if (state_ == breaker_state::half_open) {
    if (probes_in_flight_ > 0) --probes_in_flight_;
    if (++probe_ok_ >= cfg_.probe_successes) {
      state_ = breaker_state::closed;  // re-admitted: forget the bad window
      open_ns_ = 0;
      window_len_ = window_pos_ = window_failures_ = 0;
    }
    return;
  }
  if (state_ == breaker_state::closed) record(true);
}

void circuit_breaker::on_failure(int64_t now_ns) noexcept {
  if (state_ == breaker_state::half_open) {
    open(now_ns);  // failed probe: back off longer
    return;
  }
  if (state_ != breaker_state::closed) return;
  ++consecutive_;
  record(false);
  bool rate_trip = window_len_ >= cfg_.min_requests &&
                   window_failures_ >= cfg_.failure_rate * window_len_;
  if (consecutive_ >= cfg_.consecutive_failures || rate_trip) {
    consecutive_ = 0;
    open_ns_ = 0;
    open(now_ns);
  }
}

void circuit_breaker::on_abandon() noexcept {
  if (state_ == breaker_state::half_open && probes_in_flight_ > 0) --probes_in_flight_;
}

// ---- deployment health ------------------------------------------------------------------------------

deployment_health::deployment_health(health_config c) : cfg_(c), breaker_(c.breaker) {}

bool deployment_health::try_start(int64_t now_ns) noexcept {
  std::lock_guard lk(mu_);
  if (now_ns < cooldown_until_ns_) return false;
  if (!breaker_.try_acquire(now_ns)) return false;
  ++in_flight_;
  return true;
}

void deployment_health::on_first_token(int64_t now_ns, int64_t ttft_ns) noexcept {
  std::lock_guard lk(mu_);
  double ms = static_cast<double>(ttft_ns) / 1e6;
  ttft_ms_ = ttft_ms_ < 0 ? ms : relaxed(ttft_ms_, cfg_.prior_ttft_ms, now_ns) * (1 - cfg_.ewma_alpha) +
                                     ms * cfg_.ewma_alpha;
  last_sample_ns_ = now_ns;
  ++samples_;
  ttft_ring_[ring_pos_] = static_cast<float>(ms);
  ring_pos_ = (ring_pos_ + 1) % ttft_ring_.size();
  ring_len_ = std::min(ring_len_ + 1, ttft_ring_.size());
  p95_dirty_ = true;
}

void deployment_health::on_success(int64_t now_ns, int64_t ttft_ns, int64_t completion_tokens,
                                   int64_t total_ns) noexcept {
  std::lock_guard lk(mu_);
  if (in_flight_ > 0) --in_flight_;
  breaker_.on_success(now_ns);
  if (completion_tokens > 1 && total_ns > ttft_ns && ttft_ns >= 0) {
    double per = static_cast<double>(total_ns - ttft_ns) / 1e6 / static_cast<double>(completion_tokens - 1);
    per_token_ms_ = per_token_ms_ < 0 ? per
                                      : relaxed(per_token_ms_, cfg_.prior_per_token_ms, now_ns) *
                                                (1 - cfg_.ewma_alpha) +
                                            per * cfg_.ewma_alpha;
    last_sample_ns_ = now_ns;
  }
}

void deployment_health::on_failure(int64_t now_ns) noexcept {
  std::lock_guard lk(mu_);
  if (in_flight_ > 0) --in_flight_;
  breaker_.on_failure(now_ns);
}

void deployment_health::on_abandon() noexcept {
  std::lock_guard lk(mu_);
  if (in_flight_ > 0) --in_flight_;
  breaker_.on_abandon();
}

double deployment_health::relaxed(double v, double prior, int64_t now_ns) const noexcept {
  if (v < 0) return prior;
  double age_ms = static_cast<double>(now_ns - last_sample_ns_) / 1e6;
  if (age_ms <= 0 || cfg_.stale_after_ms <= 0) return v;
  double keep = std::exp(-age_ms / cfg_.stale_after_ms);
  return v * keep + prior * (1 - keep);
}

double deployment_health::expected_cost_ms(int64_t now_ns, int64_t expected_tokens) const noexcept {
  std::lock_guard lk(mu_);
  double ttft = relaxed(ttft_ms_, cfg_.prior_ttft_ms, now_ns);
  double per = relaxed(per_token_ms_, cfg_.prior_per_token_ms, now_ns);
  double one = ttft + per * static_cast<double>(std::max<int64_t>(expected_tokens, 1));
  // Each in-flight request shares the deployment: a linear penalty (the queue ahead of us).
  return one * (1.0 + static_cast<double>(in_flight_));
}

bool deployment_health::admits(int64_t now_ns) const noexcept {
  std::lock_guard lk(mu_);
  return now_ns >= cooldown_until_ns_ && breaker_.admits(now_ns);
}

bool deployment_health::wants_probe(int64_t now_ns) const noexcept {
  std::lock_guard lk(mu_);
  return now_ns >= cooldown_until_ns_ && breaker_.state(now_ns) == breaker_state::half_open &&
         breaker_.admits(now_ns);
}

void deployment_health::on_rate_limited(int64_t now_ns, double retry_after_s) noexcept {
  std::lock_guard lk(mu_);
  if (in_flight_ > 0) --in_flight_;
  breaker_.on_abandon();
  double s = retry_after_s > 0 ? retry_after_s : 1.0;
  cooldown_until_ns_ = std::max(cooldown_until_ns_, now_ns + static_cast<int64_t>(s * 1e9));
}

int64_t deployment_health::cooldown_until_ns() const noexcept {
  std::lock_guard lk(mu_);
  return cooldown_until_ns_;
}

double deployment_health::p95_ttft_ms() const noexcept {
  std::lock_guard lk(mu_);
  if (ring_len_ < 20) return -1;
  if (p95_dirty_) {
    std::array<float, 128> tmp;
    std::copy(ttft_ring_.begin(), ttft_ring_.begin() + ring_len_, tmp.begin());
    size_t k = std::min(ring_len_ - 1, static_cast<size_t>(std::ceil(0.95 * ring_len_)) - 1);
    std::nth_element(tmp.begin(), tmp.begin() + k, tmp.begin() + ring_len_);
    p95_cache_ = tmp[k];
    p95_dirty_ = false;
  }
  return p95_cache_;
}

health_snapshot deployment_health::snapshot(int64_t now_ns) const noexcept {
  double p95 = p95_ttft_ms();
  std::lock_guard lk(mu_);
  health_snapshot s;
  s.ttft_ms = relaxed(ttft_ms_, cfg_.prior_ttft_ms, now_ns);
  s.per_token_ms = relaxed(per_token_ms_, cfg_.prior_per_token_ms, now_ns);
  s.in_flight = in_flight_;
  s.state = breaker_.state(now_ns);
  s.samples = samples_;
  s.p95_ttft_ms = p95;
  return s;
}

// ---- balancer ---------------------------------------------------------------------------------------

int p2c_balancer::pick(std::span<const candidate> c, int64_t now_ns, int64_t expected_tokens,
                       std::span<const uint8_t> excluded) {
  constexpr size_t max_n = 64;
  int idx[max_n];
  double w[max_n];
  size_t n = 0;
  double total = 0;
  for (size_t i = 0; i < c.size() && n < max_n; ++i) {
    if (i < excluded.size() && excluded[i]) continue;
    if (!c[i].health || c[i].weight <= 0 || !c[i].health->admits(now_ns)) continue;
    if (c[i].health->wants_probe(now_ns)) return static_cast<int>(i);
    idx[n] = static_cast<int>(i);
    w[n] = c[i].weight;
    total += c[i].weight;
    ++n;
  }
  if (n == 0) return -1;
  if (n == 1) return idx[0];
  int a, b;
  {
    std::lock_guard lk(mu_);
    auto draw = [&](int skip) {
      double t = total - (skip >= 0 ? w[skip] : 0);
      double r = std::uniform_real_distribution<double>(0, t)(rng_);
      for (size_t i = 0; i < n; ++i) {
        if (static_cast<int>(i) == skip) continue;
        if (r < w[i]) return static_cast<int>(i);
        r -= w[i];
      }
      for (size_t i = n; i-- > 0;)
        if (static_cast<int>(i) != skip) return static_cast<int>(i);
      return 0;
    };
    a = draw(-1);
    b = draw(a);
  }
  double ca = c[idx[a]].health->expected_cost_ms(now_ns, expected_tokens) / w[a];
  double cb = c[idx[b]].health->expected_cost_ms(now_ns, expected_tokens) / w[b];
  return cb < ca ? idx[b] : idx[a];
}

// ---- budgets ----------------------------------------------------------------------------------------

void budget::refill(int64_t now_ns) noexcept {
  if (now_ns > last_ns_) {
    balance_ = std::min(cfg_.cap, balance_ + cfg_.min_per_second * static_cast<double>(now_ns - last_ns_) / 1e9);
    last_ns_ = now_ns;
  }
}

void budget::on_request(int64_t now_ns) noexcept {
  std::lock_guard lk(mu_);
  refill(now_ns);
  balance_ = std::min(cfg_.cap, balance_ + cfg_.ratio);
  ++requests_;
}

bool budget::try_withdraw(int64_t now_ns) noexcept {
  std::lock_guard lk(mu_);
  refill(now_ns);
  if (balance_ < 1.0) return false;
  balance_ -= 1.0;
  ++withdrawn_;
  return true;
}

double budget::balance(int64_t now_ns) noexcept {
  std::lock_guard lk(mu_);
  refill(now_ns);
  return balance_;
}

// ---- prefix affinity ------------------------------------------------------------------------------

uint64_t hash64(std::string_view s, uint64_t seed) noexcept {
  // FNV-1a then a murmur-style finaliser (good spread on the ring).
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

affinity_ring::affinity_ring(std::span<const std::string> replicas, int vnodes) : n_(replicas.size()) {
  ring_.reserve(replicas.size() * static_cast<size_t>(vnodes));
  for (size_t r = 0; r < replicas.size(); ++r)
    for (int v = 0; v < vnodes; ++v)
      ring_.emplace_back(hash64(replicas[r], static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull + 1),
                         static_cast<uint32_t>(r));
  std::sort(ring_.begin(), ring_.end());
}

int affinity_ring::pick(uint64_t key, std::span<const int> loads, double load_factor,
                        std::span<const uint8_t> usable) const noexcept {
  if (ring_.empty()) return -1;
  int64_t total = 0;
  size_t live = 0;
  for (size_t i = 0; i < n_; ++i) {
    bool ok = usable.empty() || (i < usable.size() && usable[i]);
    if (!ok) continue;
    ++live;
    total += i < loads.size() ? loads[i] : 0;
  }
  if (live == 0) return -1;
  double bound = std::ceil(load_factor * static_cast<double>(total + 1) / static_cast<double>(live));
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(key, uint32_t{0}));
  for (size_t step = 0; step < ring_.size(); ++step, ++it) {
    if (it == ring_.end()) it = ring_.begin();
    uint32_t r = it->second;
    bool ok = usable.empty() || (r < usable.size() && usable[r]);
    if (!ok) continue;
    int load = r < loads.size() ? loads[r] : 0;
    if (static_cast<double>(load) + 1 <= bound) return static_cast<int>(r);
  }
  return -1;
}

}  // namespace fp::routing
