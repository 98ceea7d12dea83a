// Per-API-key rate limits: requests and tokens per minute as token buckets (capacity = one
// minute's worth, refilled continuously). Local (in-process, sharded) or in Redis (one atomic Lua
// script per decision, using the Redis server's clock, so every gateway replica sees one bucket).
// Included through routing/routing.hpp. Keys are hashed before use: a raw API key is never stored,
// logged or sent to Redis.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/common.hpp"

namespace fp::redis {
class client;
}

namespace fp::routing {

struct rate_limit {
  double requests_per_minute = 0;  // 0: unlimited
  double tokens_per_minute = 0;    // 0: unlimited
  bool unlimited() const noexcept { return requests_per_minute <= 0 && tokens_per_minute <= 0; }
};

struct rate_decision {
  bool allowed = true;
  double retry_after_s = 0;   // when !allowed: seconds until the request would be admitted
  std::string_view limit;     // "requests" or "tokens" when denied
};

// Stable, non-reversible id of an API key (hex of SHA-256, first 16 bytes).
std::string key_id(std::string_view api_key);

class local_rate_limiter {
 public:
  // Charges one request and `tokens` tokens (prompt estimate + expected output) if both buckets
  // allow; otherwise charges nothing and says when to retry.
  rate_decision acquire(std::string_view key_id, const rate_limit& lim, int64_t tokens, int64_t now_ns);
  // After the response: the real token count minus what acquire charged (may be negative).
  void settle(std::string_view key_id, const rate_limit& lim, int64_t token_delta, int64_t now_ns);

 private:
  struct bucket {
    double requests = -1, tokens = -1;  // -1: full (never used)
    int64_t last_ns = 0;
  };
  struct shard {
    std::mutex mu;
    std::unordered_map<std::string, bucket> buckets;
  };
  shard& shard_for(std::string_view k);
  std::array<shard, 16> shards_;
};

// Redis token buckets. Fails open (allows, counts fp_... degraded metric, logs once) when Redis is
// unreachable: a rate limiter outage must not take the gateway down.
class redis_rate_limiter {
 public:
  redis_rate_limiter(std::shared_ptr<redis::client> client, std::string prefix = "fastpath:rl:");
  boost::asio::awaitable<rate_decision> acquire(std::string key_id, rate_limit lim, int64_t tokens);
  boost::asio::awaitable<void> settle(std::string key_id, rate_limit lim, int64_t token_delta);
  uint64_t failures() const noexcept { return failures_.load(); }

  static std::string_view acquire_script() noexcept;  // for tests/docs

 private:
  std::shared_ptr<redis::client> client_;
  std::string prefix_;
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> logged_{false};
};

}  // namespace fp::routing
