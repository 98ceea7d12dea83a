#include <openssl/sha.h>

#include <algorithm>
#include <cmath>

#include "routing/routing.hpp"

namespace fp::routing {

std::string key_id(std::string_view api_key) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(api_key.data()), api_key.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (int i = 0; i < 16; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

local_rate_limiter::shard& local_rate_limiter::shard_for(std::string_view k) {
  return shards_[std::hash<std::string_view>{}(k) % shards_.size()];
}

namespace {
// Refills a bucket of capacity `cap` (per minute) over dt seconds.
double refill(double level, double cap, double dt_s) {
  return std::min(cap, level + cap / 60.0 * dt_s);
}
}  // namespace

rate_decision local_rate_limiter::acquire(std::string_view key, const rate_limit& lim, int64_t tokens,
                                          int64_t now_ns) {
  rate_decision d;
  if (lim.unlimited()) return d;
  auto& s = shard_for(key);
  std::lock_guard lk(s.mu);
  auto it = s.buckets.find(std::string(key));
  if (it == s.buckets.end()) it = s.buckets.emplace(std::string(key), bucket{}).first;
  bucket& b = it->second;
  double dt = std::max(0.0, static_cast<double>(now_ns - b.last_ns) / 1e9);
  double rq = lim.requests_per_minute > 0 ? (b.requests == -1 ? lim.requests_per_minute
                                                              : refill(b.requests, lim.requests_per_minute, dt))
                                          : 0;
  double tk = lim.tokens_per_minute > 0 ? (b.tokens == -1 ? lim.tokens_per_minute
                                                          : refill(b.tokens, lim.tokens_per_minute, dt))
                                        : 0;
  b.last_ns = now_ns;
  b.requests = lim.requests_per_minute > 0 ? rq : -1;
  b.tokens = lim.tokens_per_minute > 0 ? tk : -1;
  double wait = 0;
  if (lim.requests_per_minute > 0 && rq < 1.0) {
    wait = (1.0 - rq) / (lim.requests_per_minute / 60.0);
    d.limit = "requests";
  }
  double cost = std::min(static_cast<double>(std::max<int64_t>(tokens, 0)), lim.tokens_per_minute);
  if (lim.tokens_per_minute > 0 && tk < cost) {
    double w = (cost - tk) / (lim.tokens_per_minute / 60.0);
    if (w > wait) {
      wait = w;
      d.limit = "tokens";
    }
  }
  if (wait > 0) {
    d.allowed = false;
    d.retry_after_s = wait;
    return d;
  }
  if (lim.requests_per_minute > 0) b.requests = rq - 1.0;
  if (lim.tokens_per_minute > 0) b.tokens = tk - cost;
  return d;
}

void local_rate_limiter::settle(std::string_view key, const rate_limit& lim, int64_t token_delta,
                                int64_t now_ns) {
  if (lim.tokens_per_minute <= 0 || token_delta == 0) return;
  auto& s = shard_for(key);
  std::lock_guard lk(s.mu);
  auto it = s.buckets.find(std::string(key));
  if (it == s.buckets.end() || it->second.tokens == -1) return;
  // Debt may push the bucket below zero (later requests wait); credit is capped at capacity.
  it->second.tokens = std::min(lim.tokens_per_minute, it->second.tokens - static_cast<double>(token_delta));
}

}  // namespace fp::routing
