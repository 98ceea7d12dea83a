// The provider contract: how the gateway asks an upstream (hosted API, local engine, simulation)
// for a completion. Implementations: openai (any OpenAI-compatible API), anthropic, local, mock.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "api/types.hpp"
#include "common/common.hpp"

namespace fp::providers {

// Receives the chunks of a streamed response, in order, each as soon as it exists.
// Returns false when the consumer is gone (client disconnected): the provider must then stop and
// cancel its upstream work at once.
class chunk_sink {
 public:
  virtual ~chunk_sink() = default;
  virtual boost::asio::awaitable<bool> on_chunk(const api::chunk& c) = 0;
  // Several chunks that exist at the same moment (e.g. every event parsed from one upstream
  // read). A sink that writes to a socket sends them with one write (one syscall, one wake-up of
  // the client) instead of one per chunk; nothing waits for more to arrive. The default hands
  // them to on_chunk one by one, so a sink that does not override this stays correct.
  virtual boost::asio::awaitable<bool> on_chunks(std::span<const api::chunk> cs);
  // The last chunks of a stream that the upstream has already ended successfully (its end marker
  // arrived with them): a sink that writes to a socket may end its stream in the same write. The
  // provider reports success afterwards. The default treats them as ordinary chunks.
  virtual boost::asio::awaitable<bool> on_final_chunks(std::span<const api::chunk> cs) { return on_chunks(cs); }
};

struct call_options {
  std::string upstream_model;  // the model name to send upstream (after routing/aliasing)
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds first_byte_timeout{60000};
  std::chrono::milliseconds chunk_gap_timeout{30000};
  std::chrono::milliseconds total_timeout{600000};
};

// Timings the provider measured (for latency accounting and balancing).
struct call_stats {
  int64_t started_ns = -1;        // when the caller started this call (now_ns()), if it read the
                                  // clock for it anyway; the provider then need not read it again
  int64_t upstream_ttfb_ns = -1;  // request sent -> first response byte
  int64_t upstream_ttft_ns = -1;  // request sent -> first content chunk
  int64_t upstream_total_ns = -1;
  int status = 0;                 // upstream HTTP status (0 for in-process providers)
  double retry_after_s = -1;      // from a 429/503 Retry-After header, -1 if none
  bool first_byte_sent = false;   // whether any chunk reached the sink (failures after this
                                  // can no longer be retried invisibly)
};

class provider {
 public:
  virtual ~provider() = default;
  virtual std::string_view name() const noexcept = 0;  // the deployment name from config
  virtual std::string_view kind() const noexcept = 0;  // "openai", "anthropic", "local", "mock"

  // Streams the completion into `sink`. Returns the final usage on success; on failure an error
  // whose http_status/message describe the upstream's answer (never containing secrets).
  // Cancellation: the awaiting coroutine's cancellation slot (asio per-operation cancellation)
  // and a false from the sink both stop the call promptly.
  virtual boost::asio::awaitable<result<api::usage>> stream(const api::request& req,
                                                            const call_options& opts,
                                                            chunk_sink& sink,
                                                            call_stats& stats) = 0;

  // Non-streamed completion. Providers whose upstream only streams may aggregate.
  virtual boost::asio::awaitable<result<api::response>> complete(const api::request& req,
                                                                 const call_options& opts,
                                                                 call_stats& stats) = 0;
};

}  // namespace fp::providers

namespace fp::providers {
// complete() for providers that only stream: plays stream() into an aggregator (stream forced on,
// usage requested) and returns one response. stats.first_byte_sent stays false: nothing reached a
// client. Shared by the local and mock providers.
boost::asio::awaitable<result<api::response>> complete_via_stream(provider& p,
                                                                  const api::request& req,
                                                                  const call_options& opts,
                                                                  call_stats& stats);
}  // namespace fp::providers
