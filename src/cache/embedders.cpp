// Model-backed embedders for the semantic cache, and the factory that picks one from the config:
//   lexical   built in (semantic.cpp)
//   local     mean-pooled final hidden states of a local GGUF model on fp_engine
//   upstream  an OpenAI-compatible POST {url}/embeddings
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

#include "cache/semantic.hpp"
#include "http/http.hpp"

#if FP_CACHE_HAVE_ENGINE
#include "engine/engine.hpp"
#include "tokenizer/tokenizer.hpp"
#endif

namespace fp::cache {

namespace {

void l2_normalise(std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  if (s <= 0) return;
  float inv = static_cast<float>(1.0 / std::sqrt(s));
  for (float& x : v) x *= inv;
}

#if FP_CACHE_HAVE_ENGINE
// Mean of the final hidden states (after the output norm) over the question's tokens (BOS left
// out), L2-normalised. One engine context behind a mutex; the forward pass runs inline on the
// calling thread (fine for small models; a large one would belong on the engine's own thread).
class local_embedder final : public embedder {
 public:
  static std::shared_ptr<embedder> open(const std::string& path, int max_tokens) {
    auto m = engine::model::load(path);
    if (!m) throw std::runtime_error("cache.semantic_local_model: " + m.error().message);
    auto vocab = tokenizer::gguf_vocab::from_gguf((*m)->file());
    if (!vocab) throw std::runtime_error("cache.semantic_local_model: " + vocab.error().message);
    engine::context_params p;
    p.n_threads = 1;
    p.kv_tokens = max_tokens;
    auto ctx = engine::context::create(*m, p);
    if (!ctx) throw std::runtime_error("cache.semantic_local_model: " + ctx.error().message);
    return std::shared_ptr<embedder>(new local_embedder(std::move(*vocab), std::move(*ctx), max_tokens));
  }
  std::string_view name() const noexcept override { return "local"; }
  size_t dim() const noexcept override { return static_cast<size_t>(ctx_->mdl().hp().n_embd); }
  // Above the p90 similarity of unrelated questions with stories260K (0.94 on
  // ../shared/data/semantic-pairs.jsonl, docs/bench/cache.md): a tiny model's pooled states are
  // all alike, so only a high threshold leaves the nearest-neighbour search any work to do.
  double default_threshold() const noexcept override { return 0.95; }
  boost::asio::awaitable<result<std::vector<float>>> embed(std::string_view text) override { co_return embed_now(text); }

  result<std::vector<float>> embed_now(std::string_view text) {
    std::lock_guard lk(mu_);
    ids_.clear();
    vocab_->encode(text, /*add_bos=*/true, /*parse_special=*/false, ids_);
    if (ids_.size() > static_cast<size_t>(max_tokens_)) ids_.resize(static_cast<size_t>(max_tokens_));
    if (ids_.empty()) return make_error(errc::invalid_request, "local embedder: empty text");
    batch_.clear();
    for (size_t i = 0; i < ids_.size(); ++i) batch_.push_back({0, static_cast<int32_t>(i), ids_[i], false});
    auto r = ctx_->decode(batch_);
    if (!r) {
      ctx_->kv().seq_remove(0);
      return r.error();
    }
    const auto& hp = ctx_->mdl().hp();
    const size_t d = static_cast<size_t>(hp.n_embd);
    const float* w = ctx_->mdl().output_norm();
    std::vector<float> out(d, 0.0f);
    size_t first = ids_.size() > 1 && ids_[0] == vocab_->bos() ? 1 : 0;
    for (size_t i = first; i < ids_.size(); ++i) {
      auto h = ctx_->hidden(i);
      if (h.size() != d) break;
      double ss = 0;
      for (float x : h) ss += double(x) * x;
      float inv = static_cast<float>(1.0 / std::sqrt(ss / double(d) + hp.rms_eps));
      for (size_t j = 0; j < d; ++j) out[j] += h[j] * inv * (w ? w[j] : 1.0f);
    }
    ctx_->kv().seq_remove(0);
    l2_normalise(out);
    return out;
  }

 private:
  local_embedder(std::shared_ptr<const tokenizer::gguf_vocab> v, std::unique_ptr<engine::context> c, int max_tokens)
      : vocab_(std::move(v)), ctx_(std::move(c)), max_tokens_(max_tokens) {}
  std::mutex mu_;
  std::shared_ptr<const tokenizer::gguf_vocab> vocab_;
  std::unique_ptr<engine::context> ctx_;
  int max_tokens_;
  std::vector<tokenizer::token_id> ids_;
  std::vector<engine::batch_entry> batch_;
};
#endif

// POST {base}/embeddings {"model": M, "input": TEXT, "dimensions": D} (OpenAI-compatible; the
// `dimensions` field asks text-embedding-3 models and `fastpath mock` for D values).
class upstream_embedder final : public embedder {
 public:
  upstream_embedder(http::url_parts where, std::string model, std::string api_key, size_t dim,
                    std::chrono::milliseconds timeout)
      : up_(where), base_path_(where.base_path), model_(std::move(model)), api_key_(std::move(api_key)),
        dim_(dim) {
    t_.connect = timeout;
    t_.first_byte = timeout;
    t_.chunk_gap = timeout;
    t_.total = timeout;
  }
  std::string_view name() const noexcept override { return "upstream"; }
  size_t dim() const noexcept override { return dim_; }
  // A starting point for OpenAI-style embedding models; calibrate cache.semantic_threshold with
  // `fastpath cache-eval --embedder upstream` for the model used (docs/bench/cache.md).
  double default_threshold() const noexcept override { return 0.70; }

  boost::asio::awaitable<result<std::vector<float>>> embed(std::string_view text) override {
    http::client_request req;
    req.target = base_path_ + "/embeddings";
    req.headers.emplace_back("Content-Type", "application/json");
    if (!api_key_.empty()) req.headers.emplace_back("Authorization", "Bearer " + api_key_);
    req.body = boost::json::serialize(boost::json::object{
        {"model", model_}, {"input", text}, {"dimensions", dim_}, {"encoding_format", "float"}});
    auto resp = co_await up_.send(std::move(req), t_);
    if (!resp) co_return resp.error();
    auto body = co_await (*resp)->read_all(16 << 20);
    if (!body) co_return body.error();
    if ((*resp)->status() != 200)
      co_return make_error(errc::upstream_error, fmt::format("embeddings: upstream status {}", (*resp)->status()));
    boost::system::error_code ec;
    auto v = boost::json::parse(*body, ec);
    const boost::json::array* emb = nullptr;
    if (!ec && v.is_object())
      if (auto* data = v.as_object().if_contains("data"); data && data->is_array() && !data->as_array().empty())
        if (auto* first = data->as_array()[0].if_object())
          if (auto* e = first->if_contains("embedding"); e && e->is_array()) emb = &e->as_array();
    if (!emb) co_return make_error(errc::upstream_error, "embeddings: no data[0].embedding in the response");
    if (emb->size() != dim_)
      co_return make_error(errc::upstream_error,
                           fmt::format("embeddings: got {} dimensions, configured {}", emb->size(), dim_));
    std::vector<float> out;
    out.reserve(dim_);
    for (auto& x : *emb) {
      if (!x.is_number()) co_return make_error(errc::upstream_error, "embeddings: a value is not a number");
      out.push_back(static_cast<float>(x.to_number<double>()));
    }
    l2_normalise(out);
    co_return out;
  }

 private:
  http::upstream up_;
  std::string base_path_, model_, api_key_;
  size_t dim_;
  http::client_timeouts t_;
};

}  // namespace

std::shared_ptr<embedder> make_embedder(const config& cfg) {
  const std::string& n = cfg.semantic_embedder;
  if (n == "lexical") return std::make_shared<lexical_embedder>();
  if (n == "local") {
#if FP_CACHE_HAVE_ENGINE
    return local_embedder::open(cfg.semantic_local_model, cfg.semantic_local_max_tokens);
#else
    throw std::runtime_error("cache.semantic_embedder: local needs the engine (not in this build)");
#endif
  }
  if (n == "upstream") {
    if (cfg.semantic_embeddings_url.empty())
      throw std::runtime_error("cache.semantic_embeddings_url: required for semantic_embedder: upstream");
    auto u = http::parse_base_url(cfg.semantic_embeddings_url);
    if (!u) throw std::runtime_error("cache.semantic_embeddings_url: " + u.error().message);
    std::string key;
    if (!cfg.semantic_embeddings_api_key_env.empty())
      if (const char* k = std::getenv(cfg.semantic_embeddings_api_key_env.c_str())) key = k;
    return std::make_shared<upstream_embedder>(*u, cfg.semantic_embeddings_model, std::move(key),
                                               cfg.semantic_embeddings_dim,
                                               std::chrono::milliseconds(cfg.semantic_embeddings_timeout_ms));
  }
  throw std::runtime_error("cache.semantic_embedder: must be lexical, local or upstream");
}

}  // namespace fp::cache
