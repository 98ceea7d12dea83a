// Public header of src/routing (fp_routing): which model answers (complexity scoring and tiers),
// which deployment serves it (latency-aware balancing, circuit breakers, prefix affinity), how
// failures and slow starts are handled (retries, fallbacks and hedging within budgets), and
// per-key rate limits. No Beast in these headers; Asio only as the awaitable type.
#pragma once

#include "routing/balance.hpp"
#include "routing/config.hpp"
#include "routing/prompt_cache.hpp"
#include "routing/rate_limit.hpp"
#include "routing/router.hpp"
#include "routing/scorer.hpp"
