// Public header of src/cache (fp_cache): the response cache of the gateway.
//
//   key      SHA-256 over a canonical form of everything that shapes the answer, namespaced by tenant
//   policy   what may be cached (repeatable requests), Cache-Control, x-fastpath-cache-ttl
//   layers   in-memory sharded LRU (byte budget) -> LMDB on disk -> Redis (shared by replicas);
//            a failing disk or Redis is counted, logged once and skipped, never fails a request
//   flights  single-flight: identical requests in flight share one upstream call; late stream
//            joiners get the backlog, then live chunks; waiters may live on other threads
//   semantic optional: nearest-neighbour lookup of the final user turn (HNSW), with a guard that
//            rejects near-misses (negation, numbers, entities, polarity, direction, other words)
//
// How the pipeline uses it (see docs/design/cache.md):
//   auto t = co_await cache.begin(info);                  // decide + look up (+ join a flight)
//   headers += {"x-fastpath-cache", status_name(t.status)};
//   stream:   co_await cache.serve_stream(t, client_sink, upstream_stream_fn);
//   complete: co_await cache.serve_complete(t, upstream_complete_fn);
// Asio stays out of this header (only the light awaitable type).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.hpp"
#include "common/common.hpp"
#include "providers/provider.hpp"

namespace YAML {
class Node;
}

namespace fp::cache {

// ---- configuration ------------------------------------------------------------------------------
// Every field is documented in docs/config/cache.md.
struct config {
  bool enabled = true;
  int64_t default_ttl_s = 3600;          // entry lifetime when the request names none
  int64_t max_ttl_s = 7 * 24 * 3600;     // upper bound for x-fastpath-cache-ttl
  std::vector<std::string> cache_any_temperature_models;  // opt-in: cache non-repeatable requests
  std::string tenant_header;             // e.g. "x-tenant-id"; empty: tenant = hash of API key
  size_t max_entry_bytes = 8 << 20;      // larger responses are not stored

  size_t memory_bytes = 256ull << 20;    // in-memory LRU byte budget (0: no memory layer)
  size_t memory_shards = 16;

  std::string disk_path;                 // LMDB directory; empty: no disk layer
  size_t disk_max_bytes = 1ull << 30;    // LMDB map size
  bool disk_sync = false;                // fsync each commit (power-loss durability)

  std::string redis_url;                 // redis://host:port[/db] or unix:///path; empty: no Redis
  std::string redis_prefix = "fpc:";
  int64_t redis_timeout_ms = 50;
  size_t redis_pool = 2;
  int64_t redis_backoff_ms = 200;        // after a Redis failure, skip Redis this long

  bool coalesce = true;                  // single-flight identical in-flight requests
  bool replay_paced = false;             // replay streamed hits with the original chunk timing
  double replay_speed = 1.0;             // pace factor (2.0 = twice as fast as the original)

  bool semantic_enabled = false;         // for every model (else per model / per request)
  std::vector<std::string> semantic_models;
  std::string semantic_embedder = "lexical";  // lexical | local | upstream
  std::string semantic_local_model = "models/stories260K.gguf";  // local: a GGUF model
  int semantic_local_max_tokens = 256;   // local: longer questions are truncated
  std::string semantic_embeddings_url;   // upstream: OpenAI-compatible base URL (POST {url}/embeddings)
  std::string semantic_embeddings_model = "text-embedding-3-small";
  std::string semantic_embeddings_api_key_env;  // upstream: env var holding the API key
  size_t semantic_embeddings_dim = 256;  // upstream: requested (`dimensions`) and checked
  int64_t semantic_embeddings_timeout_ms = 2000;
  double semantic_threshold = 0;         // cosine similarity (the guard does the rest); 0: the
                                         // embedder's default (lexical 0.70, see docs/config/cache.md)
  size_t semantic_max_entries = 100000;
};

// Reads the `cache:` section of the YAML config. Throws std::runtime_error naming the field.
config config_from_yaml(const YAML::Node& n);

// ---- keys ---------------------------------------------------------------------------------------

// Tenant namespace of a request: from a configured tenant header value, else the gateway API key
// (only its SHA-256 is kept), else "anon".
std::string tenant_id(std::string_view api_key, std::string_view tenant_header_value);

// The canonical text of the parts of the request that shape the response (sorted keys, normalised
// numbers, no whitespace; stream/stream_options/user/metadata/store/service_tier dropped; the
// model replaced by the resolved upstream model; max_completion_tokens -> max_tokens; a content
// array of one text part -> the string).
std::string canonical_request(const api::request& req, std::string_view upstream_model);
// The canonical JSON text of any value (sorted keys, integral doubles as integers, shortest
// round-trip form otherwise).
std::string canonical_json(const boost::json::value& v);

struct key {
  std::array<uint8_t, 32> digest{};
  std::string hex() const;  // 64 lower-case hex digits
};
key make_key(const api::request& req, std::string_view upstream_model, std::string_view tenant);

// Semantic scope: the key of the request with the final user turn's text blanked (so tenant,
// model, system prompt, tools, earlier turns and all parameters must match exactly).
key semantic_scope(const api::request& req, std::string_view upstream_model, std::string_view tenant);
// The text of the final message when it is a user turn; nullopt otherwise.
std::optional<std::string> final_user_text(const api::request& req);

std::string sha256_hex(std::string_view data);

// ---- policy -------------------------------------------------------------------------------------

struct cache_control {
  bool no_cache = false;   // skip lookup (still fills)
  bool no_store = false;   // don't fill
  std::optional<int64_t> max_age_s;
};
cache_control parse_cache_control(std::string_view header);

struct decision {
  bool lookup = false;
  bool store = false;
  int64_t ttl_s = 0;
  std::optional<int64_t> max_age_s;
  bool semantic = false;
  std::string_view reason;  // why bypassed ("" when cached)
};

// Per-request headers the cache reads.
struct request_headers {
  std::string_view cache_control;
  std::string_view ttl;       // x-fastpath-cache-ttl: seconds
  std::string_view semantic;  // x-fastpath-semantic-cache: on|off
};

decision decide(const config& cfg, const api::request& req, std::string_view upstream_model,
                const request_headers& h);

// ---- entries ------------------------------------------------------------------------------------

struct entry {
  std::vector<api::chunk> chunks;      // the stream, with its boundaries (no [DONE])
  std::vector<int64_t> chunk_at_us;    // offset of each chunk from the upstream call start
  std::string response;                // the aggregated non-stream response JSON
  int64_t upstream_latency_ns = 0;     // what a hit saves
  int64_t created_ms = 0;              // unix ms
  int64_t expires_ms = 0;              // unix ms
  size_t bytes() const noexcept;
};

std::string serialize(const entry& e);
result<entry> deserialize(std::string_view bytes);

// ---- the cache ----------------------------------------------------------------------------------

enum class status { bypass, miss, hit, coalesced };
std::string_view status_name(status s) noexcept;  // "bypass", "miss", "hit", "coalesced"

struct request_info {
  const api::request* req = nullptr;
  std::string_view upstream_model;  // after routing/aliasing
  std::string_view tenant;          // tenant_id(...)
  request_headers headers;
};

struct flight_membership;

// The outcome of begin(); pass it back to serve_*.
struct ticket {
  status st = status::bypass;
  std::optional<double> similarity;    // set on a semantic hit
  std::shared_ptr<const entry> hit;    // st == hit
  // st == miss (the request started a flight) or coalesced: this request's place in the flight
  // (it leaves the flight when the last copy of the ticket goes).
  std::shared_ptr<flight_membership> member;
  decision dec;
  key k;
  std::string semantic_text;           // final user turn (when semantic applies)
  std::vector<float> semantic_vec;     // its embedding (computed by the lookup)
  key scope;
  bool stream = false;
  bool include_usage = false;
  api::endpoint kind = api::endpoint::chat_completions;
  int64_t started_ns = 0;

  // Whether serve_* will run the upstream call as a flight shared with other requests: the call
  // then runs detached from this request (it goes on while other waiters need it, and is
  // cancelled when the last one leaves), so the upstream function must own what it captures.
  bool shared_call() const noexcept { return st == status::miss && member != nullptr; }
};

// Upstream calls the cache makes on a miss. When ticket::shared_call() they run after the
// requesting client left (while other waiters still need the answer), so they must then own
// everything they capture; otherwise they are awaited within serve_* and may capture references.
using upstream_stream_fn =
    std::function<boost::asio::awaitable<result<api::usage>>(providers::chunk_sink&)>;
using upstream_complete_fn = std::function<boost::asio::awaitable<result<api::response>>()>;

class embedder;

struct stats {
  uint64_t hits = 0, misses = 0, coalesced = 0, bypass = 0, semantic_hits = 0, stores = 0;
  uint64_t memory_entries = 0, memory_bytes = 0, evictions = 0;
  uint64_t disk_errors = 0, redis_errors = 0;
};

class cache {
 public:
  // clock: wall time for TTLs (tests inject a fake one). Throws on unusable config (start-up).
  explicit cache(config cfg, const clock& clk = system_clock::instance());
  ~cache();
  cache(const cache&) = delete;
  cache& operator=(const cache&) = delete;

  const config& cfg() const noexcept;

  // Decides and looks up. On a miss with coalescing the caller becomes a flight's leader, or a
  // follower (status coalesced) of an identical request already in flight.
  boost::asio::awaitable<ticket> begin(const request_info& info);
  // The bypass decision alone, before anything is built for begin() (key, resolved model, tenant):
  // true when begin() would return status bypass whatever the upstream model is, and then the
  // bypass is counted as begin() would count it; false when begin() has to decide.
  bool bypasses(const api::request& req, const request_headers& h);

  // Serves a streamed request: replays a hit (original boundaries; paced if configured), follows
  // a flight (backlog, then live chunks), or calls upstream and fills. Returns the final usage.
  boost::asio::awaitable<result<api::usage>> serve_stream(ticket& t, providers::chunk_sink& client,
                                                          upstream_stream_fn upstream);
  // Serves a non-streamed request (from a streamed or non-streamed entry / flight).
  boost::asio::awaitable<result<api::response>> serve_complete(ticket& t,
                                                               upstream_complete_fn upstream);

  // Stores an entry directly (all layers). Used by serve_* and tests.
  void store(const key& k, std::shared_ptr<const entry> e, const ticket* semantic_from = nullptr);
  // Waits until queued disk writes are committed (tests, shutdown).
  void flush();

  void set_embedder(std::shared_ptr<embedder> e);  // replaces the configured embedder (start-up)
  std::string_view embedder_name() const;
  stats get_stats() const;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;  // shared with detached flight runners
};

}  // namespace fp::cache
