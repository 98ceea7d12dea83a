// Semantic cache parts (private to src/cache and its tests, also used by `fastpath cache-eval`):
// embedders, the near-miss guard, the HNSW index.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.hpp"

namespace fp::cache {

// Turns a question into a unit-length vector. Required: name(), dim(), embed().
class embedder {
 public:
  virtual ~embedder() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual size_t dim() const noexcept = 0;
  virtual boost::asio::awaitable<result<std::vector<float>>> embed(std::string_view text) = 0;
  // Optional: the cosine threshold this embedder was calibrated for (docs/bench/cache.md).
  virtual double default_threshold() const noexcept { return 0.70; }
};

// Built-in, needs no model: hashed word unigrams + bigrams and character trigrams of the
// normalised question (see normalise_question), sub-linear TF weights, L2-normalised.
class lexical_embedder final : public embedder {
 public:
  explicit lexical_embedder(size_t dim = 1024) : dim_(dim) {}
  std::string_view name() const noexcept override { return "lexical"; }
  size_t dim() const noexcept override { return dim_; }
  boost::asio::awaitable<result<std::vector<float>>> embed(std::string_view text) override;
  std::vector<float> embed_now(std::string_view text) const;

 private:
  size_t dim_;
};

// The embedder the config names (cache.semantic_embedder): lexical, local (mean-pooled final
// hidden states of cfg.semantic_local_model on fp_engine) or upstream (POST
// cfg.semantic_embeddings_url + "/embeddings"). Throws std::runtime_error naming the field
// (start-up only).
std::shared_ptr<embedder> make_embedder(const config& cfg);

// Hook for model-backed embedders (the upstream /v1/embeddings provider, the local engine's
// mean-pooled hidden states): whoever owns the model supplies the call. Output is L2-normalised.
class function_embedder final : public embedder {
 public:
  using fn = std::function<boost::asio::awaitable<result<std::vector<float>>>(std::string_view)>;
  function_embedder(std::string name, size_t dim, fn f) : name_(std::move(name)), dim_(dim), f_(std::move(f)) {}
  std::string_view name() const noexcept override { return name_; }
  size_t dim() const noexcept override { return dim_; }
  boost::asio::awaitable<result<std::vector<float>>> embed(std::string_view text) override;

 private:
  std::string name_;
  size_t dim_;
  fn f_;
};

// The normalised form the guard compares: lower case, contractions expanded, numbers (words,
// ordinals, roman numerals) as digits, British spellings and common synonyms folded, question
// frames ("how do I", "what's the way to", "could you tell me"...), politeness and filler removed.
struct normalised_question {
  std::vector<std::string> tokens;  // every token in order (function words and order markers too)
  std::vector<bool> content;        // per token: a content word (compared as a multiset)
  std::vector<bool> capitalised;    // per token: capitalised mid-sentence in the original
};
normalised_question normalise_question(std::string_view text);

// Why a candidate above the similarity threshold was refused.
enum class reject_reason { none, negation, number, polarity, entity, direction, word };
std::string_view reject_reason_name(reject_reason r) noexcept;

// Whether the cached answer to `a` may serve `b`: their content words must agree (up to typos of
// long words and reordering), and a reordering must not move words across a direction marker
// (to/from/into/in/as/than/per/vs).
reject_reason semantic_guard(std::string_view a, std::string_view b);

// HNSW indexes (hnswlib, inner product on unit vectors = cosine), one per scope.
class semantic_index {
 public:
  explicit semantic_index(size_t dim, size_t max_entries = 100000);
  ~semantic_index();
  struct record {
    std::string target;   // exact cache key (hex) of the answer
    std::string text;     // the question
    int64_t expires_ms = 0;
  };
  // False when the index is full.
  bool add(const std::string& scope, const std::vector<float>& v, record r);
  struct candidate {
    record rec;
    double similarity = 0;
  };
  // Neighbours with similarity >= threshold, best first, unexpired.
  std::vector<candidate> search(const std::string& scope, const std::vector<float>& v, size_t k,
                                double threshold, int64_t now_ms);
  size_t size() const;
  size_t dim() const noexcept { return dim_; }

  // Persistence format of one record (for the LMDB "semantic" database).
  static std::string encode(const record& r, const std::vector<float>& v);
  static bool decode(std::string_view bytes, record& r, std::vector<float>& v);

 private:
  struct scope_index;
  size_t dim_, max_entries_, total_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<scope_index>> scopes_;
};

}  // namespace fp::cache
