// The cache facade: layered lookup, single-flight, stream replay, fills, semantic lookups, metrics.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <stdexcept>

#include "api/api.hpp"
#include "cache/flight.hpp"
#include "cache/semantic.hpp"
#include "cache/store.hpp"
#include "metrics/metrics.hpp"
#include "redis/redis.hpp"

namespace fp::cache {

namespace asio = boost::asio;
using asio::awaitable;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
struct cache_metrics {
  metrics::counter& hits_memory = metrics::get_counter("fastpath_cache_hits_total", "Cache hits by layer", {{"layer", "memory"}});
  metrics::counter& hits_disk = metrics::get_counter("fastpath_cache_hits_total", "Cache hits by layer", {{"layer", "disk"}});
  metrics::counter& hits_redis = metrics::get_counter("fastpath_cache_hits_total", "Cache hits by layer", {{"layer", "redis"}});
  metrics::counter& misses = metrics::get_counter("fastpath_cache_misses_total", "Cache misses (upstream called)");
  metrics::counter& coalesced = metrics::get_counter("fastpath_cache_coalesced_total", "Requests served by joining an identical in-flight request");
  metrics::counter& bypass = metrics::get_counter("fastpath_cache_bypass_total", "Requests the cache did not handle (policy)");
  metrics::counter& semantic_hits = metrics::get_counter("fastpath_cache_semantic_hits_total", "Semantic cache hits");
  metrics::counter& stores = metrics::get_counter("fastpath_cache_stores_total", "Entries stored");
  metrics::counter& not_stored = metrics::get_counter("fastpath_cache_not_stored_total", "Answers not stored (incomplete, failed, too large)");
  metrics::counter& evictions = metrics::get_counter("fastpath_cache_evictions_total", "Memory LRU evictions");
  metrics::counter& disk_errors = metrics::get_counter("fastpath_cache_errors_total", "Cache layer failures (request went on)", {{"layer", "disk"}});
  metrics::counter& redis_errors = metrics::get_counter("fastpath_cache_errors_total", "Cache layer failures (request went on)", {{"layer", "redis"}});
  metrics::gauge& bytes = metrics::get_gauge("fastpath_cache_memory_bytes", "Bytes held by the memory layer");
  metrics::gauge& entries = metrics::get_gauge("fastpath_cache_memory_entries", "Entries held by the memory layer");
  metrics::gauge& saved = metrics::get_gauge("fastpath_cache_latency_saved_seconds_total", "Upstream latency saved by hits (stored latency of each hit)");
  metrics::counter& reject(reject_reason r) {
    return metrics::get_counter("fastpath_cache_semantic_rejections_total", "Semantic candidates refused by the guard",
                                {{"reason", std::string(reject_reason_name(r))}});
  }
};

cache_metrics& m() {
  static cache_metrics x;
  return x;
}

bool storable_finish(api::finish_reason f) {
  return f == api::finish_reason::stop || f == api::finish_reason::length || f == api::finish_reason::tool_calls;
}

api::response response_of(const entry& e) {
  auto r = api::parse_openai_response(e.response);
  if (r) return std::move(*r);
  api::response out;
  out.json = e.response;
  return out;
}

api::usage usage_of(const entry& e) {
  for (auto it = e.chunks.rbegin(); it != e.chunks.rend(); ++it)
    if (it->usage) return *it->usage;
  auto r = api::parse_openai_response(e.response);
  if (r && r->usage) return *r->usage;
  return {};
}

}  // namespace

struct cache::impl {
  impl(config c, const clock& k) : cfg(std::move(c)), clk(k) {
    (void)m();
    if (cfg.memory_bytes > 0) mem = std::make_unique<memory_store>(cfg.memory_bytes, cfg.memory_shards);
    if (!cfg.disk_path.empty()) {
      auto d = lmdb_store::open(cfg.disk_path, cfg.disk_max_bytes, cfg.disk_sync);
      if (!d) throw std::runtime_error("cache.disk_path: " + d.error().message);
      disk = std::move(*d);
    }
    if (!cfg.redis_url.empty()) {
      redis::config rc;
      auto r = redis::parse_url(cfg.redis_url, rc);
      if (!r) throw std::runtime_error("cache.redis_url: " + r.error().message);
      rc.command_timeout = std::chrono::milliseconds(cfg.redis_timeout_ms);
      rc.connect_timeout = std::chrono::milliseconds(std::max<int64_t>(cfg.redis_timeout_ms, 100));
      rc.pool_size = cfg.redis_pool;
      rc.reconnect_backoff = std::chrono::milliseconds(std::max<int64_t>(0, cfg.redis_backoff_ms));
      rds = std::make_shared<redis::client>(rc);
    }
    emb = std::make_shared<lexical_embedder>();
    sem = std::make_unique<semantic_index>(emb->dim(), cfg.semantic_max_entries);
    if (disk) load_semantic();
  }

  config cfg;
  const clock& clk;
  std::unique_ptr<memory_store> mem;
  std::unique_ptr<lmdb_store> disk;
  std::shared_ptr<redis::client> rds;
  std::shared_ptr<embedder> emb;
  std::unique_ptr<semantic_index> sem;
  std::mutex sem_mu;  // guards emb replacement
  flight_table flights;
  std::atomic<bool> disk_logged{false}, redis_logged{false};
  std::atomic<uint64_t> n_hits{0}, n_misses{0}, n_coalesced{0}, n_bypass{0}, n_semantic{0}, n_stores{0};
  std::atomic<uint64_t> n_disk_err{0}, n_redis_err{0}, last_evictions{0};

  void load_semantic() {
    auto recs = disk->semantic_records();
    if (!recs) return;
    int64_t now = clk.wall_ms();
    for (auto& [k, v] : *recs) {
      semantic_index::record r;
      std::vector<float> vec;
      if (!semantic_index::decode(v, r, vec) || r.expires_ms <= now) continue;
      auto colon = k.find(':');
      if (colon == std::string::npos) continue;
      sem->add(k.substr(0, colon), vec, std::move(r));
    }
  }

  void disk_failed(const error& e) {
    ++n_disk_err;
    m().disk_errors.inc();
    log_once(disk_logged, log_level::warn, "cache", "disk layer failing, going on without it: " + e.message);
  }
  void redis_failed(const error& e) {
    ++n_redis_err;
    m().redis_errors.inc();
    log_once(redis_logged, log_level::warn, "cache", "redis layer failing, going on without it: " + e.message);
  }

  bool fresh(const entry& e, int64_t now, const decision& d) const {
    if (e.expires_ms <= now) return false;
    if (d.max_age_s && now - e.created_ms > *d.max_age_s * 1000) return false;
    return true;
  }

  void update_gauges() {
    if (!mem) return;
    m().bytes.set(static_cast<double>(mem->bytes()));
    m().entries.set(static_cast<double>(mem->entries()));
    uint64_t ev = mem->evictions(), last = last_evictions.exchange(ev);
    if (ev > last) m().evictions.inc(ev - last);
  }

  // Exact lookup through the layers; promotes lower-layer hits.
  awaitable<std::shared_ptr<const entry>> lookup(const std::string& k, const decision& d) {
    int64_t now = clk.wall_ms();
    int64_t max_age_ms = d.max_age_s ? *d.max_age_s * 1000 : -1;
    if (mem) {
      if (auto e = mem->get(k, now, max_age_ms)) {
        m().hits_memory.inc();
        co_return e;
      }
    }
    if (disk) {
      auto r = disk->get(k);
      if (!r) {
        disk_failed(r.error());
      } else if (*r) {
        auto e = deserialize(**r);
        if (e && fresh(*e, now, d)) {
          auto sp = std::make_shared<const entry>(std::move(*e));
          if (mem) mem->put(k, sp);
          m().hits_disk.inc();
          co_return sp;
        }
      }
    }
    if (rds) {
      std::vector<std::string> cmd{"GET", cfg.redis_prefix + k};  // (gcc 12: no init-list in co_await)
      auto r = co_await rds->command(std::move(cmd));
      if (!r) {
        redis_failed(r.error());
      } else if (r->type == redis::reply::kind::string) {
        auto e = deserialize(r->str);
        if (e && fresh(*e, now, d)) {
          auto sp = std::make_shared<const entry>(std::move(*e));
          if (mem) mem->put(k, sp);
          m().hits_redis.inc();
          co_return sp;
        }
      }
    }
    co_return nullptr;
  }

  awaitable<void> put_redis(const std::string& k, const entry& e) {
    if (!rds) co_return;
    int64_t ttl_ms = std::max<int64_t>(1, e.expires_ms - clk.wall_ms());
    std::vector<std::string> cmd{"SET", cfg.redis_prefix + k, serialize(e), "PX", std::to_string(ttl_ms)};
    auto r = co_await rds->command(std::move(cmd));
    if (!r) redis_failed(r.error());
  }

  // Detached: owns what it uses (the cache may be gone when Redis answers).
  static awaitable<void> redis_set(std::shared_ptr<redis::client> client, std::string key, std::string bytes,
                                   int64_t ttl_ms) {
    std::vector<std::string> cmd{"SET", std::move(key), std::move(bytes), "PX", std::to_string(ttl_ms)};
    auto r = co_await client->command(std::move(cmd));
    if (!r) m().redis_errors.inc();
  }

  // Stores in every layer. Redis: fire-and-forget unless `redis_later` (the caller then awaits
  // put_redis itself, so the entry is visible to other replicas when the response completes).
  void put(const std::string& k, const std::shared_ptr<const entry>& e, bool redis_later = false) {
    ++n_stores;
    m().stores.inc();
    if (mem) mem->put(k, e);
    update_gauges();
    std::string bytes;
    if (disk || rds) bytes = serialize(*e);
    if (disk) disk->put_async(k, bytes);
    if (rds && !redis_later) {
      int64_t ttl_ms = std::max<int64_t>(1, e->expires_ms - clk.wall_ms());
      // Fire and forget: a failure is counted, never awaited by the request.
      asio::co_spawn(asio::system_executor(), redis_set(rds, cfg.redis_prefix + k, std::move(bytes), ttl_ms),
                     asio::detached);
    }
  }
};

cache::cache(config cfg, const clock& clk) : impl_(std::make_unique<impl>(std::move(cfg), clk)) {}
cache::~cache() = default;

const config& cache::cfg() const noexcept { return impl_->cfg; }

void cache::set_embedder(std::shared_ptr<embedder> e) {
  std::lock_guard lk(impl_->sem_mu);
  impl_->emb = std::move(e);
  impl_->sem = std::make_unique<semantic_index>(impl_->emb->dim(), impl_->cfg.semantic_max_entries);
}

stats cache::get_stats() const {
  stats s;
  s.hits = impl_->n_hits;
  s.misses = impl_->n_misses;
  s.coalesced = impl_->n_coalesced;
  s.bypass = impl_->n_bypass;
  s.semantic_hits = impl_->n_semantic;
  s.stores = impl_->n_stores;
  if (impl_->mem) {
    s.memory_entries = impl_->mem->entries();
    s.memory_bytes = impl_->mem->bytes();
    s.evictions = impl_->mem->evictions();
  }
  s.disk_errors = impl_->n_disk_err;
  s.redis_errors = impl_->n_redis_err;
  return s;
}

void cache::flush() {
  if (impl_->disk) impl_->disk->flush();
}

void cache::store(const key& k, std::shared_ptr<const entry> e, const ticket* from) {
  impl_->put(k.hex(), e, from != nullptr);
  if (from && from->dec.semantic && !from->semantic_text.empty()) {
    std::shared_ptr<embedder> emb;
    {
      std::lock_guard lk(impl_->sem_mu);
      emb = impl_->emb;
    }
    auto* lex = dynamic_cast<lexical_embedder*>(emb.get());
    if (lex) {  // model embedders are async: see begin()
      auto v = lex->embed_now(from->semantic_text);
      semantic_index::record r{k.hex(), from->semantic_text, e->expires_ms};
      if (impl_->disk) impl_->disk->put_semantic_async(from->scope.hex() + ":" + k.hex(), semantic_index::encode(r, v));
      impl_->sem->add(from->scope.hex(), v, std::move(r));
    }
  }
}

awaitable<ticket> cache::begin(const request_info& info) {
  ticket t;
  t.started_ns = now_ns();
  const api::request& req = *info.req;
  t.stream = req.stream;
  t.include_usage = req.include_usage;
  t.kind = req.kind;
  t.dec = decide(impl_->cfg, req, info.upstream_model, info.headers);
  if (!t.dec.lookup && !t.dec.store) {
    t.st = status::bypass;
    ++impl_->n_bypass;
    m().bypass.inc();
    co_return t;
  }
  t.k = make_key(req, info.upstream_model, info.tenant);
  std::string hex = t.k.hex();
  if (t.dec.semantic) {
    if (auto text = final_user_text(req)) {
      t.semantic_text = std::move(*text);
      t.scope = semantic_scope(req, info.upstream_model, info.tenant);
    }
  }
  if (t.dec.lookup) {
    if (auto e = co_await impl_->lookup(hex, t.dec)) {
      t.st = status::hit;
      t.hit = std::move(e);
      ++impl_->n_hits;
      m().saved.add(static_cast<double>(t.hit->upstream_latency_ns) / 1e9);
      co_return t;
    }
    if (!t.semantic_text.empty()) {
      std::shared_ptr<embedder> emb;
      {
        std::lock_guard lk(impl_->sem_mu);
        emb = impl_->emb;
      }
      auto v = co_await emb->embed(t.semantic_text);
      if (v) {
        auto cands = impl_->sem->search(t.scope.hex(), *v, 4, impl_->cfg.semantic_threshold, impl_->clk.wall_ms());
        for (auto& c : cands) {
          auto why = semantic_guard(c.rec.text, t.semantic_text);
          if (why != reject_reason::none) {
            m().reject(why).inc();
            continue;
          }
          if (auto e = co_await impl_->lookup(c.rec.target, t.dec)) {
            t.st = status::hit;
            t.hit = std::move(e);
            t.similarity = c.similarity;
            ++impl_->n_hits;
            ++impl_->n_semantic;
            m().semantic_hits.inc();
            m().saved.add(static_cast<double>(t.hit->upstream_latency_ns) / 1e9);
            co_return t;
          }
        }
      }
    }
    if (impl_->cfg.coalesce) {
      bool leader = false;
      t.fl = impl_->flights.join(hex, leader);
      if (!leader) {
        t.st = status::coalesced;
        ++impl_->n_coalesced;
        m().coalesced.inc();
        co_return t;
      }
      // A flight that ended between our lookup and join stored its entry first: look again.
      if (impl_->mem) {
        if (auto e = impl_->mem->get(hex, impl_->clk.wall_ms(), t.dec.max_age_s ? *t.dec.max_age_s * 1000 : -1)) {
          t.fl->finish(e, std::nullopt);
          impl_->flights.remove(hex, t.fl.get());
          t.fl.reset();
          t.st = status::hit;
          t.hit = std::move(e);
          ++impl_->n_hits;
          m().hits_memory.inc();
          co_return t;
        }
      }
    }
  }
  t.st = status::miss;
  ++impl_->n_misses;
  m().misses.inc();
  co_return t;
}

namespace {

// Deregisters a follower however its coroutine ends (also when cancelled by a disconnect).
struct waiter_guard {
  flight* f;
  std::shared_ptr<flight::waiter> w;
  ~waiter_guard() { f->remove_waiter(w); }
};

// Leader's sink: records the chunks (with timing), feeds followers, forwards to the client.
class tee_sink final : public providers::chunk_sink {
 public:
  tee_sink(providers::chunk_sink* client, flight* f, int64_t t0) : client_(client), f_(f), t0_(t0) {}
  awaitable<bool> on_chunk(const api::chunk& c) override {
    int64_t at = (now_ns() - t0_) / 1000;
    e_.chunks.push_back(c);
    e_.chunk_at_us.push_back(at);
    if (c.finish == api::finish_reason::error) failed_ = true;
    if (f_) f_->publish(c, at);
    if (client_ && client_ok_) client_ok_ = co_await client_->on_chunk(c);
    // Keep the upstream call going while followers still wait for it.
    co_return client_ok_ || (f_ && f_->waiters() > 0);
  }
  entry e_;
  bool failed_ = false;

 private:
  providers::chunk_sink* client_;
  flight* f_;
  int64_t t0_;
  bool client_ok_ = true;
};

}  // namespace

awaitable<result<api::usage>> cache::serve_stream(ticket& t, providers::chunk_sink& client, upstream_stream_fn upstream) {
  auto& I = *impl_;
  if (t.st == status::hit) {
    const entry& e = *t.hit;
    bool paced = I.cfg.replay_paced;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < e.chunks.size(); ++i) {
      if (paced && i < e.chunk_at_us.size()) {
        timer.expires_at(start + std::chrono::microseconds(static_cast<int64_t>(e.chunk_at_us[i] / I.cfg.replay_speed)));
        co_await timer.async_wait(use_tuple);
      }
      if (!co_await client.on_chunk(e.chunks[i])) co_return make_error(errc::cancelled, "client disconnected");
    }
    co_return usage_of(e);
  }
  if (t.st == status::coalesced) {
    auto w = std::make_shared<flight::waiter>(co_await asio::this_coro::executor);
    t.fl->add_waiter(w);
    waiter_guard guard{t.fl.get(), w};
    size_t next = 0;
    for (int rounds = 0;; ++rounds) {
      auto v = t.fl->read(next, w);
      if (!v.done || !v.result) {
        for (auto& c : v.fresh) {
          if (!co_await client.on_chunk(c)) co_return make_error(errc::cancelled, "client disconnected");
          ++next;
        }
      }
      if (v.done) {
        if (v.result) {
          // Whatever the leader's mode, the entry holds the whole chunk sequence.
          for (size_t i = next; i < v.result->chunks.size(); ++i)
            if (!co_await client.on_chunk(v.result->chunks[i])) co_return make_error(errc::cancelled, "client disconnected");
          co_return usage_of(*v.result);
        }
        if (next == 0) {  // the leader failed before anything was sent: call upstream ourselves
          t.st = status::bypass;
          co_return co_await upstream(client);
        }
        co_return v.err ? *v.err : make_error(errc::upstream_error, "upstream failed");
      }
      if (v.fresh.empty()) {
        w->timer.expires_after(std::chrono::milliseconds(100));  // safety net; woken by post
        co_await w->timer.async_wait(use_tuple);
      }
      (void)rounds;
    }
  }
  if (t.st == status::bypass || !t.dec.store) {
    auto r = co_await upstream(client);
    if (t.fl) {  // a no-store leader still answers its followers
      t.fl->finish(nullptr, r ? std::nullopt : std::optional<error>(r.error()));
      I.flights.remove(t.k.hex(), t.fl.get());
    }
    co_return r;
  }
  // Miss: call upstream, tee into the flight, store a completed stream.
  tee_sink tee(&client, t.fl.get(), t.started_ns);
  auto r = co_await upstream(tee);
  std::shared_ptr<entry> e;
  bool complete = r && !tee.failed_ && !tee.e_.chunks.empty();
  api::finish_reason fin = api::finish_reason::none;
  for (auto& c : tee.e_.chunks)
    if (c.finish != api::finish_reason::none) fin = c.finish;
  if (complete) {
    e = std::make_shared<entry>(std::move(tee.e_));
    api::chunk_aggregator agg;
    for (auto& c : e->chunks) (void)agg.add(c.json);
    e->response = agg.finish().json;
    e->upstream_latency_ns = now_ns() - t.started_ns;
    e->created_ms = I.clk.wall_ms();
    e->expires_ms = e->created_ms + t.dec.ttl_s * 1000;
    if (storable_finish(fin) && e->bytes() <= I.cfg.max_entry_bytes) {
      store(t.k, e, &t);
      co_await I.put_redis(t.k.hex(), *e);
    } else {
      m().not_stored.inc();
    }
  } else {
    m().not_stored.inc();
  }
  if (t.fl) {
    t.fl->finish(e, r ? std::nullopt : std::optional<error>(r.error()));
    I.flights.remove(t.k.hex(), t.fl.get());
  }
  co_return r;
}

awaitable<result<api::response>> cache::serve_complete(ticket& t, upstream_complete_fn upstream) {
  auto& I = *impl_;
  if (t.st == status::hit) co_return response_of(*t.hit);
  if (t.st == status::coalesced) {
    auto w = std::make_shared<flight::waiter>(co_await asio::this_coro::executor);
    t.fl->add_waiter(w);
    waiter_guard guard{t.fl.get(), w};
    for (;;) {
      auto v = t.fl->read(SIZE_MAX, w);
      if (v.done) {
        if (v.result) co_return response_of(*v.result);
        t.st = status::bypass;
        co_return co_await upstream();
      }
      w->timer.expires_after(std::chrono::milliseconds(100));
      co_await w->timer.async_wait(use_tuple);
    }
  }
  auto r = co_await upstream();
  std::shared_ptr<entry> e;
  if (r && t.st == status::miss) {
    auto chunks = api::response_to_chunks(r->json, true);
    if (chunks) {
      e = std::make_shared<entry>();
      e->chunks = std::move(*chunks);
      e->chunk_at_us.assign(e->chunks.size(), 0);
      e->response = r->json;
      e->upstream_latency_ns = now_ns() - t.started_ns;
      e->created_ms = I.clk.wall_ms();
      e->expires_ms = e->created_ms + t.dec.ttl_s * 1000;
      if (t.dec.store && storable_finish(r->finish) && e->bytes() <= I.cfg.max_entry_bytes) {
        store(t.k, e, &t);
        co_await I.put_redis(t.k.hex(), *e);
      } else {
        m().not_stored.inc();
      }
    }
  }
  if (t.fl) {
    t.fl->finish(e, r ? std::nullopt : std::optional<error>(r.error()));
    I.flights.remove(t.k.hex(), t.fl.get());
  }
  co_return r;
}

}  // namespace fp::cache
