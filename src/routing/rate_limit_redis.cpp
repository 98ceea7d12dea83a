// Redis token buckets: one Lua script decides and charges both buckets (requests and tokens) of a
// key atomically, with the Redis server's clock (TIME), so any number of gateway replicas share
// exact limits whatever their own clocks say. Fails open when Redis is unreachable.
#include <fmt/format.h>

#include <cmath>

#include "redis/redis.hpp"
#include "routing/routing.hpp"

namespace fp::routing {

namespace {

// KEYS[1] request bucket, KEYS[2] token bucket (hashes {b = level, t = ms of last update}).
// ARGV[1] requests/min (0: none), ARGV[2] tokens/min (0: none), ARGV[3] token cost.
// Returns {allowed (0/1), retry_after_ms, which (1 requests, 2 tokens)}.
constexpr std::string_view k_acquire = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, cap)
  local v = redis.call('HMGET', key, 'b', 't')
  local b, ts = tonumber(v[1]), tonumber(v[2])
  if b == nil or ts == nil then return cap end
  return math.min(cap, b + math.max(0, now - ts) * cap / 60000.0)
end
local rpm, tpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rb, tb = 0, 0
local wait, which = 0, 0
if rpm > 0 then
  rb = level(KEYS[1], rpm)
  if rb < 1 then wait = (1 - rb) * 60000.0 / rpm; which = 1 end
end
if tpm > 0 then
  cost = math.min(cost, tpm)
  tb = level(KEYS[2], tpm)
  if tb < cost then
    local w = (cost - tb) * 60000.0 / tpm
    if w > wait then wait = w; which = 2 end
  end
end
if wait > 0 then return {0, math.ceil(wait), which} end
if rpm > 0 then
  redis.call('HSET', KEYS[1], 'b', tostring(rb - 1), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[1], 120000)
end
if tpm > 0 then
  redis.call('HSET', KEYS[2], 'b', tostring(tb - cost), 't', tostring(now))
  redis.call('PEXPIRE', KEYS[2], 120000)
end
return {1, 0, 0}
)lua";

// KEYS[1] token bucket; ARGV[1] tokens/min, ARGV[2] delta (real - charged). Debt allowed.
constexpr std::string_view k_settle = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'b', 't')
local b, ts = tonumber(v[1]), tonumber(v[2])
if b == nil or ts == nil then return 0 end
b = math.min(tpm, b + math.max(0, now - ts) * tpm / 60000.0) - delta
redis.call('HSET', KEYS[1], 'b', tostring(math.min(tpm, b)), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return 1
)lua";

std::string num(double v) { return fmt::format("{:.6g}", v); }

}  // namespace

std::string_view redis_rate_limiter::acquire_script() noexcept { return k_acquire; }

redis_rate_limiter::redis_rate_limiter(std::shared_ptr<redis::client> client, std::string prefix)
    : client_(std::move(client)), prefix_(std::move(prefix)) {}

boost::asio::awaitable<rate_decision> redis_rate_limiter::acquire(std::string key_id, rate_limit lim, int64_t tokens) {
  rate_decision d;
  if (lim.unlimited()) co_return d;
  // (named vectors: g++ 12 miscompiles braced lists inside co_await expressions)
  std::vector<std::string> keys;
  keys.push_back(prefix_ + key_id + ":r");
  keys.push_back(prefix_ + key_id + ":t");
  std::vector<std::string> args;
  args.push_back(num(lim.requests_per_minute));
  args.push_back(num(lim.tokens_per_minute));
  args.push_back(std::to_string(std::max<int64_t>(tokens, 0)));
  auto r = co_await client_->eval(k_acquire, std::move(keys), std::move(args));
  if (!r || r->is_error() || r->type != redis::reply::kind::array || r->elements.size() < 3) {
    failures_.fetch_add(1, std::memory_order_relaxed);
    log_once(logged_, log_level::warn, "routing",
             fmt::format("rate limiter: Redis unavailable ({}); allowing requests",
                         !r ? r.error().message : (r->is_error() ? r->str : std::string("bad reply"))));
    co_return d;
  }
  if (r->elements[0].integer == 0) {
    d.allowed = false;
    d.retry_after_s = static_cast<double>(r->elements[1].integer) / 1000.0;
    d.limit = r->elements[2].integer == 2 ? "tokens" : "requests";
  }
  co_return d;
}

boost::asio::awaitable<void> redis_rate_limiter::settle(std::string key_id, rate_limit lim, int64_t token_delta) {
  if (lim.tokens_per_minute <= 0 || token_delta == 0) co_return;
  std::vector<std::string> keys;
  keys.push_back(prefix_ + key_id + ":t");
  std::vector<std::string> args;
  args.push_back(num(lim.tokens_per_minute));
  args.push_back(std::to_string(token_delta));
  auto r = co_await client_->eval(k_settle, std::move(keys), std::move(args));
  if (!r || r->is_error()) failures_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace fp::routing
