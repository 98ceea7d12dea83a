// The cache facade: layered lookup, single-flight, stream replay, fills, semantic lookups, metrics.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

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

struct cache::impl : std::enable_shared_from_this<cache::impl> {
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
    emb = make_embedder(cfg);
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
  std::atomic<bool> disk_logged{false}, redis_logged{false}, embed_logged{false};
  std::atomic<uint64_t> n_hits{0}, n_misses{0}, n_coalesced{0}, n_bypass{0}, n_semantic{0}, n_stores{0};
  std::atomic<uint64_t> n_disk_err{0}, n_redis_err{0}, last_evictions{0};

  void load_semantic() {
    auto recs = disk->semantic_records();
    if (!recs) return;
    int64_t now = clk.wall_ms();
    for (auto& [k, v] : *recs) {
      semantic_index::record r;
      std::vector<float> vec;
      if (!semantic_index::decode(v, r, vec) || r.expires_ms <= now || vec.size() != sem->dim()) continue;
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

  void embed_failed(const error& e) {
    log_once(embed_logged, log_level::warn, "cache", "semantic embedder failing, exact cache only: " + e.message);
  }
  // The similarity threshold: configured, else the embedder's own default. Caller holds sem_mu
  // or only reads (emb is replaced at start-up only).
  double threshold() const { return cfg.semantic_threshold > 0 ? cfg.semantic_threshold : emb->default_threshold(); }

  // Fills (cache.cpp, below).
  awaitable<void> index_semantic(const ticket& t, const std::shared_ptr<const entry>& e);
  void index_vector(const ticket& t, const std::shared_ptr<const entry>& e, const std::vector<float>& v);
  awaitable<void> finish_fill(const ticket& t, std::shared_ptr<entry> e, bool storable);
  // Ends the flight (if any) with the answer's entry or the upstream's error.
  void end_flight(const ticket& t, flight* f, const std::shared_ptr<entry>& e, std::optional<error> err) {
    if (!f) return;
    f->finish(e, std::move(err));
    flights.remove(t.k.hex(), f);
  }
  awaitable<result<api::usage>> fill_stream(const ticket& t, const upstream_stream_fn& upstream,
                                            providers::chunk_sink* client, flight* f);
  awaitable<result<api::response>> fill_complete(const ticket& t, const upstream_complete_fn& upstream, flight* f);
  void start_runner(const ticket& t, upstream_stream_fn sfn, upstream_complete_fn cfn, asio::any_io_executor ex);

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

// ---- fills: run an upstream call, record it, store a completed answer, end its flight ------------

namespace {

// Records the upstream stream (chunks with their timing), publishes each chunk to the flight and
// forwards it to a client (the direct path without a flight). Returns false to stop the upstream
// call when nobody waits any more.
class record_sink final : public providers::chunk_sink {
 public:
  record_sink(providers::chunk_sink* client, flight* f, int64_t t0) : client_(client), f_(f), t0_(t0) {}
  awaitable<bool> on_chunk(const api::chunk& c) override { co_return co_await on_chunks(std::span(&c, 1)); }
  // A batch (chunks from one upstream read) is recorded chunk by chunk and forwarded as a batch.
  awaitable<bool> on_chunks(std::span<const api::chunk> cs) override {
    const int64_t at_us = (now_ns() - t0_) / 1000;
    for (const auto& c : cs) {
      e_.chunks.push_back(c);
      e_.chunk_at_us.push_back(at_us);
      if (c.finish == api::finish_reason::error) failed_ = true;
      if (f_) f_->publish(c);
    }
    if (f_ && f_->abandoned()) co_return false;
    if (client_) co_return co_await client_->on_chunks(cs);
    co_return true;
  }
  entry e_;
  bool failed_ = false;

 private:
  providers::chunk_sink* client_;
  flight* f_;
  int64_t t0_;
};

}  // namespace

awaitable<void> cache::impl::index_semantic(const ticket& t, const std::shared_ptr<const entry>& e) {
  if (!t.dec.semantic || t.semantic_text.empty()) co_return;
  std::vector<float> v = t.semantic_vec;
  if (v.empty()) {  // no lookup ran (Cache-Control: no-cache): embed now
    std::shared_ptr<embedder> em;
    {
      std::lock_guard lk(sem_mu);
      em = emb;
    }
    auto r = co_await em->embed(t.semantic_text);
    if (!r) co_return;
    v = std::move(*r);
  }
  index_vector(t, e, v);
}

void cache::impl::index_vector(const ticket& t, const std::shared_ptr<const entry>& e, const std::vector<float>& v) {
  std::lock_guard lk(sem_mu);
  if (v.size() != sem->dim()) return;  // the embedder was replaced meanwhile
  semantic_index::record r{t.k.hex(), t.semantic_text, e->expires_ms};
  if (disk) disk->put_semantic_async(t.scope.hex() + ":" + t.k.hex(), semantic_index::encode(r, v));
  sem->add(t.scope.hex(), v, std::move(r));
}

awaitable<void> cache::impl::finish_fill(const ticket& t, std::shared_ptr<entry> e, bool storable) {
  if (!e || !storable || e->bytes() > cfg.max_entry_bytes || !t.dec.store) {
    m().not_stored.inc();
    co_return;
  }
  e->upstream_latency_ns = now_ns() - t.started_ns;
  e->created_ms = clk.wall_ms();
  e->expires_ms = e->created_ms + t.dec.ttl_s * 1000;
  std::string hex = t.k.hex();
  put(hex, e, /*redis_later=*/true);
  co_await index_semantic(t, e);
  // Write-through: another replica sees the entry as soon as this answer is complete.
  co_await put_redis(hex, *e);
}

awaitable<result<api::usage>> cache::impl::fill_stream(const ticket& t, const upstream_stream_fn& upstream,
                                                       providers::chunk_sink* client, flight* f) {
  record_sink rec(client, f, t.started_ns);
  auto r = co_await upstream(rec);
  std::shared_ptr<entry> e;
  if (r && !rec.failed_ && !rec.e_.chunks.empty()) {
    api::finish_reason fin = api::finish_reason::none;
    for (auto& c : rec.e_.chunks)
      if (c.finish != api::finish_reason::none) fin = c.finish;
    e = std::make_shared<entry>(std::move(rec.e_));
    api::chunk_aggregator agg;
    for (auto& c : e->chunks) (void)agg.add(c.json);
    e->response = agg.finish().json;
    co_await finish_fill(t, e, storable_finish(fin));
  } else {
    co_await finish_fill(t, nullptr, false);  // counted as not stored
  }
  end_flight(t, f, e, r ? std::nullopt : std::optional<error>(r.error()));
  co_return r;
}

awaitable<result<api::response>> cache::impl::fill_complete(const ticket& t, const upstream_complete_fn& upstream,
                                                            flight* f) {
  auto r = co_await upstream();
  std::shared_ptr<entry> e;
  if (r) {
    e = std::make_shared<entry>();
    e->response = r->json;
    auto chunks = api::response_to_chunks(r->json, true);
    if (chunks) {  // else the answer is shared with the waiters but not stored
      e->chunks = std::move(*chunks);
      e->chunk_at_us.assign(e->chunks.size(), 0);
    }
    co_await finish_fill(t, e, chunks && storable_finish(r->finish));
  } else {
    co_await finish_fill(t, nullptr, false);  // counted as not stored
  }
  end_flight(t, f, e, r ? std::nullopt : std::optional<error>(r.error()));
  co_return r;
}

// The flight's own upstream call: detached from every request, cancelled when the last waiter
// leaves (flight_table::leave -> flight::cancel_runner).
void cache::impl::start_runner(const ticket& t, upstream_stream_fn sfn, upstream_complete_fn cfn,
                               asio::any_io_executor ex) {
  std::shared_ptr<flight> fl = t.member->fl;
  ticket job = t;  // what the fill needs (key, decision, semantic text): a copy that is no waiter
  job.member.reset();
  job.hit.reset();
  auto sig = std::make_shared<asio::cancellation_signal>();
  fl->set_canceller(ex, sig);
  auto self = shared_from_this();
  auto run = [](std::shared_ptr<impl> I, std::shared_ptr<flight> f, ticket job, upstream_stream_fn sfn,
                upstream_complete_fn cfn) -> awaitable<void> {
    if (sfn) (void)co_await I->fill_stream(job, sfn, nullptr, f.get());
    else (void)co_await I->fill_complete(job, cfn, f.get());
  };
  std::string hex = t.k.hex();
  asio::co_spawn(ex, run(self, fl, std::move(job), std::move(sfn), std::move(cfn)),
                 asio::bind_cancellation_slot(sig->slot(), [sig, fl, self, hex](std::exception_ptr ep) {
                   if (!ep) return;
                   // A cancelled runner (nobody waits any more) may end with asio's
                   // operation_aborted exception; anything else is a programmer error. Either
                   // way the flight ends, so no waiter hangs.
                   fl->finish(nullptr, make_error(errc::internal, "cache: the shared upstream call failed"));
                   self->flights.remove(hex, fl.get());
                   try {
                     std::rethrow_exception(ep);
                   } catch (const boost::system::system_error& e) {
                     if (e.code() != asio::error::operation_aborted)
                       log(log_level::error, "cache", std::string("shared upstream call threw: ") + e.what());
                   } catch (const std::exception& e) {
                     log(log_level::error, "cache", std::string("shared upstream call threw: ") + e.what());
                   }
                 }));
}

cache::cache(config cfg, const clock& clk) : impl_(std::make_shared<impl>(std::move(cfg), clk)) {}
cache::~cache() = default;

const config& cache::cfg() const noexcept { return impl_->cfg; }

void cache::set_embedder(std::shared_ptr<embedder> e) {
  std::lock_guard lk(impl_->sem_mu);
  impl_->emb = std::move(e);
  impl_->sem = std::make_unique<semantic_index>(impl_->emb->dim(), impl_->cfg.semantic_max_entries);
  if (impl_->disk) impl_->load_semantic();
}

std::string_view cache::embedder_name() const {
  std::lock_guard lk(impl_->sem_mu);
  return impl_->emb->name();
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
  impl_->put(k.hex(), e);
  if (from && from->dec.semantic && !from->semantic_text.empty()) {
    std::vector<float> v = from->semantic_vec;
    if (v.empty()) {
      std::shared_ptr<embedder> em;
      {
        std::lock_guard lk(impl_->sem_mu);
        em = impl_->emb;
      }
      if (auto* lex = dynamic_cast<lexical_embedder*>(em.get())) v = lex->embed_now(from->semantic_text);
    }
    if (!v.empty()) {
      ticket t = *from;
      t.k = k;
      impl_->index_vector(t, e, v);
    }
  }
}

bool cache::bypasses(const api::request& req, const request_headers& h) {
  // Only cache_any_temperature_models makes lookup/store depend on the upstream model.
  if (!impl_->cfg.cache_any_temperature_models.empty()) return false;
  decision d = decide(impl_->cfg, req, {}, h);
  if (d.lookup || d.store) return false;
  ++impl_->n_bypass;
  m().bypass.inc();
  return true;
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
        std::vector<semantic_index::candidate> cands;
        {
          std::lock_guard lk(impl_->sem_mu);
          if (v->size() == impl_->sem->dim())
            cands = impl_->sem->search(t.scope.hex(), *v, 4, impl_->threshold(), impl_->clk.wall_ms());
        }
        t.semantic_vec = std::move(*v);
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
      } else {
        impl_->embed_failed(v.error());
      }
    }
    if (impl_->cfg.coalesce) {
      auto mem = std::make_shared<flight_membership>();
      mem->w = std::make_shared<flight::waiter>(co_await asio::this_coro::executor);
      bool leader = false;
      mem->fl = impl_->flights.join(hex, mem->w, leader);
      mem->table = &impl_->flights;
      mem->key = hex;
      t.member = std::move(mem);
      if (!leader) {
        t.st = status::coalesced;
        ++impl_->n_coalesced;
        m().coalesced.inc();
        co_return t;
      }
      // A flight that ended between our lookup and join stored its entry first: look again.
      if (impl_->mem) {
        if (auto e = impl_->mem->get(hex, impl_->clk.wall_ms(), t.dec.max_age_s ? *t.dec.max_age_s * 1000 : -1)) {
          t.member->fl->finish(e, std::nullopt);
          impl_->flights.remove(hex, t.member->fl.get());
          t.member.reset();
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

// ---- serving ------------------------------------------------------------------------------------

namespace {

bool cancelled(const asio::cancellation_state& cs) { return cs.cancelled() != asio::cancellation_type::none; }

}  // namespace

awaitable<result<api::usage>> cache::serve_stream(ticket& t, providers::chunk_sink& client, upstream_stream_fn upstream) {
  auto& I = *impl_;
  auto gone = [] { return make_error(errc::cancelled, "client disconnected"); };
  if (t.st == status::hit) {
    const entry& e = *t.hit;
    bool paced = I.cfg.replay_paced;
    std::optional<asio::steady_timer> timer;
    if (paced) timer.emplace(co_await asio::this_coro::executor);
    auto start = std::chrono::steady_clock::now();
    if (!paced) {  // at full speed: the whole stream in one write, chunk boundaries kept
      if (!co_await client.on_chunks(e.chunks)) co_return gone();
      co_return usage_of(e);
    }
    for (size_t i = 0; i < e.chunks.size(); ++i) {
      if (paced && i < e.chunk_at_us.size()) {
        timer->expires_at(start + std::chrono::microseconds(static_cast<int64_t>(e.chunk_at_us[i] / I.cfg.replay_speed)));
        co_await timer->async_wait(use_tuple);
      }
      if (!co_await client.on_chunk(e.chunks[i])) co_return gone();
    }
    co_return usage_of(e);
  }
  if (!t.member) {  // bypass, or no coalescing: the call belongs to this request
    if (t.st == status::bypass || !t.dec.store) co_return co_await upstream(client);
    co_return co_await I.fill_stream(t, upstream, &client, nullptr);
  }
  if (t.st == status::miss) I.start_runner(t, upstream, nullptr, co_await asio::this_coro::executor);
  // Every waiter, the one that started the flight included: backlog, then live chunks.
  flight& f = *t.member->fl;
  const auto& w = t.member->w;
  size_t next = 0;
  for (;;) {
    auto v = f.read(next, w);
    if ((!v.done || !v.result) && !v.fresh.empty()) {  // what arrived since the last read, in one piece
      if (!co_await client.on_chunks(v.fresh)) co_return gone();
      next += v.fresh.size();
    }
    if (v.done) {
      if (!v.result) co_return v.err ? *v.err : make_error(errc::upstream_error, "upstream failed");
      if (v.result->chunks.empty() && next == 0) {  // a non-stream answer that cannot be replayed
        t.member.reset();
        t.st = status::bypass;
        co_return co_await upstream(client);
      }
      // Whatever the runner's mode, the entry holds the whole chunk sequence.
      if (next < v.result->chunks.size() &&
          !co_await client.on_chunks(std::span(v.result->chunks).subspan(next)))
        co_return gone();
      co_return usage_of(*v.result);
    }
    if (v.fresh.empty()) {
      w->timer.expires_after(std::chrono::seconds(1));  // safety net only; woken by the runner
      co_await w->timer.async_wait(use_tuple);
      // (read inline: co_await on a nested awaitable throws once the coroutine is cancelled)
      if (cancelled(co_await asio::this_coro::cancellation_state)) co_return gone();
    }
  }
}

awaitable<result<api::response>> cache::serve_complete(ticket& t, upstream_complete_fn upstream) {
  auto& I = *impl_;
  if (t.st == status::hit) co_return response_of(*t.hit);
  if (!t.member) {
    if (t.st == status::bypass) co_return co_await upstream();
    co_return co_await I.fill_complete(t, upstream, nullptr);
  }
  if (t.st == status::miss) I.start_runner(t, nullptr, upstream, co_await asio::this_coro::executor);
  flight& f = *t.member->fl;
  const auto& w = t.member->w;
  for (;;) {
    auto v = f.read(SIZE_MAX, w);
    if (v.done) {
      if (v.result) co_return response_of(*v.result);
      co_return v.err ? *v.err : make_error(errc::upstream_error, "upstream failed");
    }
    w->timer.expires_after(std::chrono::seconds(1));
    co_await w->timer.async_wait(use_tuple);
    if (cancelled(co_await asio::this_coro::cancellation_state)) co_return make_error(errc::cancelled, "client disconnected");
  }
}

}  // namespace fp::cache
