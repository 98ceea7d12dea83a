// Model loading (hyper-parameters, weight views) and the batched forward pass.
#include "engine/model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <atomic>
#include <cmath>
#include <cstring>

#include "engine/threadpool.hpp"

namespace fp::engine {

std::string_view arch_name(arch a) noexcept {
  switch (a) {
    case arch::llama: return "llama";
    case arch::mistral: return "mistral";
    case arch::qwen2: return "qwen2";
  }
  return "?";
}

namespace {

// f(i) for every token i of a batch: inline for small batches, else spread over the pool (the
// per-token work between the matrix products -- norms, RoPE, SwiGLU, residuals -- was ~10% of a
// 512-token prefill on one thread while the other waited).
template <class F>
void per_token(thread_pool& pool, int n, F&& f) {
  if (n < 16 || pool.size() == 1) {
    for (int i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<int> next{0};
  pool.run([&](int, int) {
    for (;;) {
      const int i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      f(i);
    }
  });
}

error bad(std::string msg) { return make_error(errc::corrupt_data, "model: " + std::move(msg)); }

// An integer hyper-parameter in [lo, hi]; `def` if absent and def >= 0.
result<int> hp_int(const gguf::file& f, const std::string& key, int64_t lo, int64_t hi, int64_t def = -1) {
  auto v = def >= 0 ? f.get_int_or(key, def) : f.get_int(key);
  if (!v) return make_error(v.error().code == errc::not_found ? errc::corrupt_data : v.error().code,
                            "model: " + v.error().message);
  if (*v < lo || *v > hi) return bad(fmt::format("{} = {} is outside [{}, {}]", key, *v, lo, hi));
  return static_cast<int>(*v);
}

}  // namespace

result<std::shared_ptr<const model>> model::load(const std::string& path) {
  auto f = gguf::file::open(path);
  if (!f) return f.error();
  return load(std::move(*f));
}

result<std::shared_ptr<const model>> model::load(std::shared_ptr<const gguf::file> fp) {
  std::shared_ptr<model> m(new model());
  m->file_ = fp;
  const gguf::file& f = *fp;
  hparams& hp = m->hp_;
  std::string a(f.architecture());
  if (a == "llama") hp.architecture = arch::llama;
  else if (a == "mistral") hp.architecture = arch::mistral;
  else if (a == "qwen2") hp.architecture = arch::qwen2;
  else
    return make_error(errc::unsupported,
                      fmt::format("model: architecture '{}' is not supported (llama, mistral, qwen2)", a));

#define FP_TRY_INT(var, key, lo, hi, ...)                   \
  {                                                         \
    auto r_ = hp_int(f, a + key, lo, hi, ##__VA_ARGS__);    \
    if (!r_) return r_.error();                             \
    var = *r_;                                              \
  }
  FP_TRY_INT(hp.n_embd, ".embedding_length", 1, 1 << 16);
  FP_TRY_INT(hp.n_layer, ".block_count", 1, 1024);
  FP_TRY_INT(hp.n_ff, ".feed_forward_length", 1, 1 << 20);
  FP_TRY_INT(hp.n_head, ".attention.head_count", 1, 4096);
  FP_TRY_INT(hp.n_head_kv, ".attention.head_count_kv", 1, 4096, hp.n_head);
  FP_TRY_INT(hp.n_ctx_train, ".context_length", 1, 1 << 24, 2048);
  FP_TRY_INT(hp.head_dim, ".attention.key_length", 2, 512, hp.n_embd / hp.n_head);
  {
    int vlen = 0;
    FP_TRY_INT(vlen, ".attention.value_length", 2, 512, hp.head_dim);
    if (vlen != hp.head_dim)
      return make_error(errc::unsupported, "model: key_length != value_length is not supported");
  }
  FP_TRY_INT(hp.n_rot, ".rope.dimension_count", 2, hp.head_dim, hp.head_dim);
  FP_TRY_INT(hp.sliding_window, ".attention.sliding_window", 0, 1 << 24, 0);
#undef FP_TRY_INT
  if (hp.n_head % hp.n_head_kv != 0)
    return bad(fmt::format("head_count {} is not a multiple of head_count_kv {}", hp.n_head, hp.n_head_kv));
  if (hp.n_rot % 2 != 0) return bad(fmt::format("rope dimension {} is odd", hp.n_rot));
  {
    auto eps = f.get_float_or(a + ".attention.layer_norm_rms_epsilon", 1e-5);
    if (!eps) return eps.error();
    if (!(*eps > 0 && *eps < 1)) return bad("layer_norm_rms_epsilon out of range");
    hp.rms_eps = static_cast<float>(*eps);
    auto base = f.get_float_or(a + ".rope.freq_base", 10000.0);
    if (!base) return base.error();
    if (!(*base > 1)) return bad("rope.freq_base out of range");
    hp.rope_freq_base = static_cast<float>(*base);
    double factor = 1.0;
    std::string stype = "linear";
    if (auto t = f.get_string(a + ".rope.scaling.type")) stype = std::string(*t);
    if (auto s = f.get_float(a + ".rope.scaling.factor")) factor = *s;
    else if (auto s2 = f.get_float(a + ".rope.scale_linear")) factor = *s2;
    if (stype == "none") factor = 1.0;
    else if (stype != "linear" && factor != 1.0)
      return make_error(errc::unsupported, fmt::format("model: rope scaling '{}' is not supported", stype));
    if (!(factor > 0)) return bad("rope scaling factor out of range");
    hp.rope_freq_scale = static_cast<float>(1.0 / factor);
  }
  hp.rope = hp.architecture == arch::qwen2 ? rope_mode::neox : rope_mode::normal;

  // ---- tensors ----
  auto view = [&](const std::string& name, int64_t cols, int64_t rows, bool optional,
                  weight_view& out) -> result<bool> {
    const gguf::tensor_info* t = f.find_tensor(name);
    if (!t) {
      if (optional) return false;
      return bad(fmt::format("tensor '{}' is missing", name));
    }
    auto type = static_cast<ggml_type>(t->type);
    if (!type_supported(type))
      return make_error(errc::unsupported, fmt::format("model: tensor '{}' has type {}, which the engine "
                                                       "cannot compute with", name, gguf::tensor_type_name(t->type)));
    if (t->n_dims > 2 || static_cast<int64_t>(t->dims[0]) != cols || static_cast<int64_t>(t->dims[1]) != rows)
      return bad(fmt::format("tensor '{}' has shape [{}, {}], expected [{}, {}]", name, t->dims[0],
                             t->dims[1], cols, rows));
    out = weight_view{type, rows, cols, t->data, 0};
    m->weight_bytes_ += t->size_bytes;
    return true;
  };
  // A 1-D F32 vector (norm weights, biases); other float types are converted once.
  auto vec = [&](const std::string& name, int64_t n, bool optional, const float*& out) -> result<void> {
    const gguf::tensor_info* t = f.find_tensor(name);
    if (!t) {
      if (optional) return {};
      return bad(fmt::format("tensor '{}' is missing", name));
    }
    if (t->n_elements != static_cast<uint64_t>(n) || t->dims[0] != static_cast<uint64_t>(n))
      return bad(fmt::format("tensor '{}' has {} elements, expected {}", name, t->n_elements, n));
    if (t->type == gguf::tensor_type::f32) {
      out = reinterpret_cast<const float*>(t->data);
    } else {
      auto type = static_cast<ggml_type>(t->type);
      if (!type_supported(type))
        return make_error(errc::unsupported, fmt::format("model: tensor '{}' has unsupported type {}", name,
                                                         gguf::tensor_type_name(t->type)));
      m->owned_.emplace_back(static_cast<size_t>(n));
      dequantize_row(type, t->data, m->owned_.back().data(), n);
      out = m->owned_.back().data();
    }
    m->weight_bytes_ += t->size_bytes;
    return {};
  };

  const gguf::tensor_info* emb = f.find_tensor("token_embd.weight");
  if (!emb) return bad("tensor 'token_embd.weight' is missing");
  if (emb->n_dims != 2 || emb->dims[1] == 0 || emb->dims[1] > (1u << 24))
    return bad("tensor 'token_embd.weight' has a bad shape");
  hp.n_vocab = static_cast<int>(emb->dims[1]);
  const int qd = hp.q_dim(), kvd = hp.kv_dim();
#define FP_TRY(expr)          \
  {                           \
    auto r_ = (expr);         \
    if (!r_) return r_.error(); \
  }
  FP_TRY(view("token_embd.weight", hp.n_embd, hp.n_vocab, false, m->tok_embd_));
  m->weight_bytes_ -= emb->size_bytes;  // only one row per token is read
  {
    auto has_out = view("output.weight", hp.n_embd, hp.n_vocab, true, m->output_);
    if (!has_out) return has_out.error();
    if (!*has_out) {
      m->output_ = m->tok_embd_;  // tied embeddings
      m->weight_bytes_ += emb->size_bytes;
    }
  }
  FP_TRY(vec("output_norm.weight", hp.n_embd, false, m->output_norm_));
  FP_TRY(vec("rope_freqs.weight", hp.n_rot / 2, true, m->rope_freqs_));
  m->layers_.resize(static_cast<size_t>(hp.n_layer));
  for (int i = 0; i < hp.n_layer; ++i) {
    auto& L = m->layers_[static_cast<size_t>(i)];
    std::string p = fmt::format("blk.{}.", i);
    FP_TRY(vec(p + "attn_norm.weight", hp.n_embd, false, L.attn_norm));
    FP_TRY(view(p + "attn_q.weight", hp.n_embd, qd, false, L.wq));
    FP_TRY(view(p + "attn_k.weight", hp.n_embd, kvd, false, L.wk));
    FP_TRY(view(p + "attn_v.weight", hp.n_embd, kvd, false, L.wv));
    FP_TRY(view(p + "attn_output.weight", qd, hp.n_embd, false, L.wo));
    FP_TRY(vec(p + "attn_q.bias", qd, true, L.bq));
    FP_TRY(vec(p + "attn_k.bias", kvd, true, L.bk));
    FP_TRY(vec(p + "attn_v.bias", kvd, true, L.bv));
    FP_TRY(vec(p + "ffn_norm.weight", hp.n_embd, false, L.ffn_norm));
    FP_TRY(view(p + "ffn_gate.weight", hp.n_embd, hp.n_ff, false, L.w_gate));
    FP_TRY(view(p + "ffn_up.weight", hp.n_embd, hp.n_ff, false, L.w_up));
    FP_TRY(view(p + "ffn_down.weight", hp.n_ff, hp.n_embd, false, L.w_down));
  }
#undef FP_TRY
  return std::shared_ptr<const model>(std::move(m));
}

std::string model::describe() const {
  return fmt::format("{} {}L {}d {}h/{}kv ff{} vocab{} {} ({:.1f} MiB weights)", arch_name(hp_.architecture),
                     hp_.n_layer, hp_.n_embd, hp_.n_head, hp_.n_head_kv, hp_.n_ff, hp_.n_vocab,
                     type_name(layers_.empty() ? tok_embd_.type : layers_[0].wq.type),
                     static_cast<double>(weight_bytes_) / (1 << 20));
}

// ---- context ------------------------------------------------------------------------------------

context::context(std::shared_ptr<const model> m, const context_params& p)
    : model_(std::move(m)),
      params_(p),
      kv_(model_->hp().n_layer, model_->hp().kv_dim(), p.kv_block,
          (p.kv_tokens + p.kv_block - 1) / p.kv_block),
      pool_(std::make_unique<thread_pool>(p.n_threads)) {}

context::~context() = default;

int context::n_threads() const noexcept { return pool_->size(); }

result<std::unique_ptr<context>> context::create(std::shared_ptr<const model> m,
                                                 const context_params& p) {
  if (!m) return make_error(errc::invalid_request, "context: no model");
  if (p.n_threads < 1 || p.n_threads > 256)
    return make_error(errc::invalid_request, fmt::format("context: {} threads", p.n_threads));
  if (p.kv_block < 1 || p.kv_block > 4096 || p.kv_tokens < 1 || p.kv_tokens > (1 << 24))
    return make_error(errc::invalid_request, "context: bad KV cache size");
  return std::unique_ptr<context>(new context(std::move(m), p));
}

void context::ensure_scratch(int n, int n_out) {
  const auto& hp = model_->hp();
  if (n > scratch_tokens_) {
    auto sz = [&](int per) { return static_cast<size_t>(n) * static_cast<size_t>(per); };
    x_.resize(sz(hp.n_embd));
    xb_.resize(sz(std::max(hp.n_embd, hp.q_dim())));
    q_.resize(sz(hp.q_dim()));
    k_.resize(sz(hp.kv_dim()));
    v_.resize(sz(hp.kv_dim()));
    att_out_.resize(sz(hp.q_dim()));
    hb_.resize(sz(hp.n_ff));
    hb2_.resize(sz(hp.n_ff));
    scratch_tokens_ = n;
  }
  if (n_out > scratch_out_) {
    logits_.resize(static_cast<size_t>(n_out) * static_cast<size_t>(hp.n_vocab));
    scratch_out_ = n_out;
  }
  size_t sc = static_cast<size_t>(pool_->size()) *
              attn_scratch_floats(hp.n_head / hp.n_head_kv, params_.kv_tokens + 1, hp.head_dim);
  if (scores_.size() < sc) scores_.resize(sc);
}

size_t context::scratch_bound(const hparams& hp, int n_threads, int kv_tokens, int max_batch,
                              int max_logits) noexcept {
  const auto B = static_cast<size_t>(max_batch);
  const auto D = static_cast<size_t>(hp.n_embd), QD = static_cast<size_t>(hp.q_dim()),
             KVD = static_cast<size_t>(hp.kv_dim()), FF = static_cast<size_t>(hp.n_ff);
  // x_, xb_, q_, k_, v_, att_out_, hb_, hb2_ (see ensure_scratch)
  const size_t acts = 4 * B * (D + std::max(D, QD) + QD + 2 * KVD + QD + 2 * FF);
  const size_t logits = 4 * static_cast<size_t>(max_logits) * static_cast<size_t>(hp.n_vocab);
  const size_t scores = 4 * static_cast<size_t>(n_threads) *
                        attn_scratch_floats(hp.n_head / hp.n_head_kv, kv_tokens + 1, hp.head_dim);
  const int64_t max_cols = std::max<int64_t>({hp.n_embd, hp.q_dim(), hp.n_ff});
  return acts + logits + scores + matmul_scratch_bound(max_cols, max_batch, n_threads);
}

std::span<const float> context::logits(size_t entry) const noexcept {
  if (entry >= logit_row_.size() || logit_row_[entry] < 0) return {};
  size_t nv = static_cast<size_t>(model_->hp().n_vocab);
  return {logits_.data() + static_cast<size_t>(logit_row_[entry]) * nv, nv};
}

std::span<const float> context::hidden(size_t entry) const noexcept {
  if (entry >= logit_row_.size()) return {};  // logit_row_ has one slot per entry of the last batch
  size_t d = static_cast<size_t>(model_->hp().n_embd);
  return {x_.data() + entry * d, d};
}

result<void> context::decode(std::span<const batch_entry> batch) {
  const auto& hp = model_->hp();
  const int n = static_cast<int>(batch.size());
  if (n == 0) return make_error(errc::invalid_request, "decode: empty batch");

  // ---- validate, and find each sequence's written range ----
  // Sequences of the batch (few; a reused vector with a linear search allocates nothing per token).
  auto& spans = spans_;
  spans.clear();
  auto find_span = [&](int32_t seq) -> seq_span* {
    for (auto& sp : spans)
      if (sp.seq == seq) return &sp;
    return nullptr;
  };
  int n_out = 0;
  for (int i = 0; i < n; ++i) {
    const auto& e = batch[static_cast<size_t>(i)];
    if (e.token < 0 || e.token >= hp.n_vocab)
      return make_error(errc::invalid_request, fmt::format("decode: token {} outside the vocabulary", e.token));
    if (e.pos < 0) return make_error(errc::invalid_request, "decode: negative position");
    seq_span* sp = find_span(e.seq);
    if (!sp) {
      int32_t len = kv_.seq_len(e.seq);
      if (e.pos > len)
        return make_error(errc::invalid_request,
                          fmt::format("decode: sequence {} has {} positions; position {} leaves a gap", e.seq, len, e.pos));
      spans.push_back({e.seq, e.pos, e.pos, len, kv_.seq_exists(e.seq)});
    } else {
      if (e.pos != sp->last + 1)
        return make_error(errc::invalid_request,
                          fmt::format("decode: positions of sequence {} must be consecutive", e.seq));
      sp->last = e.pos;
    }
    if (e.logits) ++n_out;
  }
  int need = 0;
  for (const auto& s : spans) {
    if (s.last >= params_.kv_tokens)
      return make_error(errc::too_large, fmt::format("decode: position {} exceeds the context of {} tokens",
                                                     s.last, params_.kv_tokens));
    need += kv_.blocks_needed(s.seq, s.last + 1);
  }
  if (need > kv_.blocks_free())
    return make_error(errc::too_large, fmt::format("KV cache full: need {} blocks, {} free", need, kv_.blocks_free()));
  for (const auto& s : spans) {
    auto r = kv_.reserve(s.seq, s.first, s.last + 1);
    if (!r) {  // copy-on-write needed more than estimated: undo
      for (const auto& ss : spans) {
        if (!ss.existed) kv_.seq_remove(ss.seq);
        else kv_.seq_truncate(ss.seq, ss.old_len);
      }
      return r.error();
    }
  }

  ensure_scratch(n, n_out);
  logit_row_.assign(static_cast<size_t>(n), -1);
  out_entries_.clear();
  for (int i = 0; i < n; ++i)
    if (batch[static_cast<size_t>(i)].logits) {
      logit_row_[static_cast<size_t>(i)] = static_cast<int32_t>(out_entries_.size());
      out_entries_.push_back(i);
    }

  const int64_t D = hp.n_embd, QD = hp.q_dim(), KVD = hp.kv_dim(), FF = hp.n_ff;
  float* x = x_.data();
  float* xb = xb_.data();
  for (int i = 0; i < n; ++i) get_row(model_->tok_embd(), batch[static_cast<size_t>(i)].token, x + i * D);

  rope_params rp;
  rp.n_rot = hp.n_rot;
  rp.freq_base = hp.rope_freq_base;
  rp.freq_scale = hp.rope_freq_scale;
  rp.freq_factors = model_->rope_freqs();
  rp.mode = hp.rope;

  thread_pool& pool = *pool_;
  using pclock = std::chrono::steady_clock;
  const auto t_start = pclock::now();
  double t_mm = 0, t_att = 0;
  auto since = [](pclock::time_point t0) { return std::chrono::duration<double>(pclock::now() - t0).count(); };
  for (int l = 0; l < hp.n_layer; ++l) {
    const layer_weights& L = model_->layer(l);
    per_token(pool, n, [&](int i) { rmsnorm(x + i * D, L.attn_norm, xb + i * D, D, hp.rms_eps); });
    auto t0 = pclock::now();
    matmul(L.wq, xb, D, q_.data(), QD, n, pool);
    matmul(L.wk, xb, D, k_.data(), KVD, n, pool);
    matmul(L.wv, xb, D, v_.data(), KVD, n, pool);
    t_mm += since(t0);
    per_token(pool, n, [&](int i) {  // distinct (seq, pos) per entry: disjoint cache rows
      float* qi = q_.data() + i * QD;
      float* ki = k_.data() + i * KVD;
      float* vi = v_.data() + i * KVD;
      if (L.bq) vec_add(qi, L.bq, QD);
      if (L.bk) vec_add(ki, L.bk, KVD);
      if (L.bv) vec_add(vi, L.bv, KVD);
      const auto& e = batch[static_cast<size_t>(i)];
      rope(qi, hp.n_head, hp.head_dim, e.pos, rp);
      rope(ki, hp.n_head_kv, hp.head_dim, e.pos, rp);
      f32_to_f16_row(ki, kv_.k(l, e.seq, e.pos), KVD);
      f32_to_f16_row(vi, kv_.v(l, e.seq, e.pos), KVD);
    });
    t0 = pclock::now();
    attention(l, batch);
    t_att += since(t0);
    t0 = pclock::now();
    matmul(L.wo, att_out_.data(), QD, xb, D, n, pool);
    t_mm += since(t0);
    per_token(pool, n, [&](int i) {
      vec_add(x + i * D, xb + i * D, D);
      rmsnorm(x + i * D, L.ffn_norm, xb + i * D, D, hp.rms_eps);
    });
    t0 = pclock::now();
    matmul(L.w_gate, xb, D, hb_.data(), FF, n, pool);
    matmul(L.w_up, xb, D, hb2_.data(), FF, n, pool);
    t_mm += since(t0);
    per_token(pool, n, [&](int i) { silu_mul(hb_.data() + i * FF, hb2_.data() + i * FF, hb_.data() + i * FF, FF); });
    t0 = pclock::now();
    matmul(L.w_down, hb_.data(), FF, xb, D, n, pool);
    t_mm += since(t0);
    per_token(pool, n, [&](int i) { vec_add(x + i * D, xb + i * D, D); });
  }

  // Output only for the entries that asked for logits, packed.
  const int no = static_cast<int>(out_entries_.size());
  for (int j = 0; j < no; ++j)
    rmsnorm(x + out_entries_[static_cast<size_t>(j)] * D, model_->output_norm(), xb + j * D, D, hp.rms_eps);
  auto t0 = pclock::now();
  if (no > 0) matmul(model_->output(), xb, D, logits_.data(), hp.n_vocab, no, pool);
  t_mm += since(t0);
  times_.matmul += t_mm;
  times_.attention += t_att;
  times_.total += since(t_start);

  for (const auto& s : spans) kv_.set_len(s.seq, s.last + 1);
  return {};
}

// Causal attention of every batch entry over its own sequence's cache, positions
// [max(0, pos - window + 1), pos]. Work items are (entry, KV head) pairs split across the pool;
// each runs attention_group for the query heads sharing that KV head (GQA), so one K/V row is
// read and converted once per group instead of once per query head.
//
// Numerics follow ggml's CPU flash-attention path with an F16 cache (what llama.cpp runs by
// default), so logits agree with llama.cpp to ~1e-3 instead of ~1e-2: q is rounded to F16 before
// the K dot products, and the V accumulator is an online softmax whose running sum is rounded to
// F16 after every position (see attention_group in kernels.hpp).
void context::attention(int layer, std::span<const batch_entry> batch) {
  const auto& hp = model_->hp();
  const int n = static_cast<int>(batch.size());
  const int hd = hp.head_dim, QD = hp.q_dim();
  const int group = hp.n_head / hp.n_head_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Block pointers of this layer, per sequence of the batch.
  attn_ptrs_.clear();
  attn_first_.clear();
  for (const auto& sp : spans_) {
    attn_first_.push_back(attn_ptrs_.size());
    const auto& table = kv_.blocks(sp.seq);
    for (int32_t b : table) attn_ptrs_.push_back(kv_.block_k(b, layer));
    for (int32_t b : table) attn_ptrs_.push_back(kv_.block_v(b, layer));
  }
  const int64_t items = static_cast<int64_t>(n) * hp.n_head_kv;
  const size_t score_stride = attn_scratch_floats(group, params_.kv_tokens + 1, hd);
  std::atomic<int64_t> next{0};
  auto work = [&](int ti, int) {
    attn_group_args a;
    a.n_q = group;
    a.head_dim = hd;
    a.block_tokens = kv_.block_tokens();
    a.row_stride = kv_.kv_dim();
    a.scale = scale;
    a.scratch = scores_.data() + static_cast<size_t>(ti) * score_stride;
    for (;;) {
      const int64_t it = next.fetch_add(1, std::memory_order_relaxed);
      if (it >= items) break;
      const int i = static_cast<int>(it / hp.n_head_kv), g = static_cast<int>(it % hp.n_head_kv);
      const auto& e = batch[static_cast<size_t>(i)];
      size_t si = 0;
      while (spans_[si].seq != e.seq) ++si;
      const size_t nblocks = kv_.blocks(e.seq).size();
      a.k_blocks = attn_ptrs_.data() + attn_first_[si];
      a.v_blocks = a.k_blocks + nblocks;
      a.q = q_.data() + static_cast<size_t>(i) * QD + static_cast<size_t>(g) * group * hd;
      a.out = att_out_.data() + static_cast<size_t>(i) * QD + static_cast<size_t>(g) * group * hd;
      a.head_offset = static_cast<int64_t>(g) * hd;
      a.p0 = hp.sliding_window > 0 ? std::max(0, e.pos - hp.sliding_window + 1) : 0;
      a.p1 = e.pos;
      attention_group(a);
    }
  };
  if (pool_->size() == 1 || items < 4) {
    work(0, 1);
  } else {
    pool_->run(work);
  }
}

}  // namespace fp::engine
