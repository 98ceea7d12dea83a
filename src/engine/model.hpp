// The model: hyper-parameters and weight views read from a GGUF file (llama, mistral, qwen2),
// and the batched forward pass over (sequence, position, token) entries into a kv_cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "engine/kernels.hpp"
#include "engine/kv_cache.hpp"
#include "gguf/gguf.hpp"

namespace fp::engine {

class thread_pool;

enum class arch { llama, mistral, qwen2 };
std::string_view arch_name(arch a) noexcept;

struct hparams {
  arch architecture = arch::llama;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_embd = 0;         // model width
  int n_layer = 0;
  int n_ff = 0;           // feed-forward width
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;       // key/value length per head
  int n_rot = 0;          // rotated dims per head
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // 1 / linear scaling factor
  rope_mode rope = rope_mode::normal;
  int sliding_window = 0;  // 0 = full attention

  int kv_dim() const noexcept { return n_head_kv * head_dim; }
  int q_dim() const noexcept { return n_head * head_dim; }
};

struct layer_weights {
  const float* attn_norm = nullptr;  // (n_embd)
  weight_view wq, wk, wv, wo;        // (q_dim, n_embd), (kv_dim, n_embd) x2, (n_embd, q_dim)
  const float* bq = nullptr;         // qwen2 biases, optional: (q_dim), (kv_dim), (kv_dim)
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;   // (n_embd)
  weight_view w_gate, w_up, w_down;  // (n_ff, n_embd) x2, (n_embd, n_ff)
};

class model {
 public:
  // Reads hyper-parameters and checks every tensor's presence, type and shape. unsupported for
  // an architecture or tensor type the engine cannot run; corrupt_data for inconsistent files.
  static result<std::shared_ptr<const model>> load(std::shared_ptr<const gguf::file> f);
  static result<std::shared_ptr<const model>> load(const std::string& path);

  const hparams& hp() const noexcept { return hp_; }
  const gguf::file& file() const noexcept { return *file_; }
  const std::shared_ptr<const gguf::file>& file_ptr() const noexcept { return file_; }
  const weight_view& tok_embd() const noexcept { return tok_embd_; }
  const weight_view& output() const noexcept { return output_; }  // == tok_embd when tied
  const float* output_norm() const noexcept { return output_norm_; }
  const float* rope_freqs() const noexcept { return rope_freqs_; }  // optional, n_rot/2
  const layer_weights& layer(int i) const noexcept { return layers_[static_cast<size_t>(i)]; }
  // Bytes of weights read per generated token (all matrices once; for bandwidth accounting).
  uint64_t weight_bytes() const noexcept { return weight_bytes_; }
  std::string describe() const;  // "llama 5L 64d 8h/4kv ff172 vocab512 F32"

 private:
  model() = default;
  std::shared_ptr<const gguf::file> file_;
  hparams hp_;
  weight_view tok_embd_, output_;
  const float* output_norm_ = nullptr;
  const float* rope_freqs_ = nullptr;
  std::vector<std::vector<float>> owned_;  // F32 copies of non-F32 norm/bias vectors
  std::vector<layer_weights> layers_;
  uint64_t weight_bytes_ = 0;
};

// One entry of a batch: token `token` of sequence `seq` at position `pos`. Entries of one
// sequence must have consecutive increasing positions, the first at most the sequence's current
// length (a lower one overwrites: that is how rejected draft tokens are replaced).
struct batch_entry {
  int32_t seq = 0;
  int32_t pos = 0;
  int32_t token = 0;
  bool logits = false;  // compute the output logits for this entry
};

struct context_params {
  int n_threads = 1;
  int kv_tokens = 2048;   // KV capacity in tokens, over all sequences
  int kv_block = 16;      // tokens per KV block
};

// Everything mutable for running a model: the KV cache, scratch buffers and the thread pool.
// Not thread-safe: one context per engine thread.
class context {
 public:
  static result<std::unique_ptr<context>> create(std::shared_ptr<const model> m,
                                                 const context_params& p);
  ~context();

  // Runs the forward pass over the batch, appending each entry's K/V to its sequence.
  // Errors (invalid_request / too_large) leave the cache unchanged.
  result<void> decode(std::span<const batch_entry> batch);
  // Logits (n_vocab) of the i-th entry of the last batch; the entry must have logits = true.
  std::span<const float> logits(size_t entry) const noexcept;
  // Final hidden state (n_embd) of the i-th entry of the last batch: the residual stream after
  // the last layer, before output_norm (e.g. for mean-pooled embeddings). Valid until the next
  // decode(); empty when out of range.
  std::span<const float> hidden(size_t entry) const noexcept;

  kv_cache& kv() noexcept { return kv_; }
  const model& mdl() const noexcept { return *model_; }
  const std::shared_ptr<const model>& model_ptr() const noexcept { return model_; }
  int n_threads() const noexcept;

  // Upper bound of the memory this context adds beyond the mapped model file and the KV cache
  // (kv().bytes_total()), for batches of at most max_batch tokens of which at most max_logits ask
  // for logits: activations, logits, attention scratch, the kernels' scratch. With the process
  // baseline (binary, libraries, vocabulary) this is the "small constant" of the memory formula
  // peak RSS <= file + KV + constant (docs/design/engine.md, Memory).
  static size_t scratch_bound(const hparams& hp, int n_threads, int kv_tokens, int max_batch,
                              int max_logits) noexcept;

  // Wall-clock seconds spent by decode() since the last reset, by phase (for profiling: the
  // bench prints them; two clock reads per phase and layer, negligible next to a forward pass).
  struct phase_times {
    double matmul = 0, attention = 0, total = 0;
  };
  const phase_times& times() const noexcept { return times_; }
  void reset_times() noexcept { times_ = {}; }

 private:
  context(std::shared_ptr<const model> m, const context_params& p);
  void ensure_scratch(int n_tokens, int n_out);
  void attention(int layer, std::span<const batch_entry> batch);

  std::shared_ptr<const model> model_;
  context_params params_;
  kv_cache kv_;
  std::unique_ptr<thread_pool> pool_;
  int scratch_tokens_ = 0, scratch_out_ = 0;
  std::vector<float> x_, xb_, q_, k_, v_, att_out_, hb_, hb2_, scores_, logits_;
  std::vector<int32_t> logit_row_;  // entry index -> row in logits_ (-1: none)
  std::vector<int32_t> out_entries_;
  struct seq_span {
    int32_t seq, first, last, old_len;
    bool existed;
  };
  std::vector<seq_span> spans_;  // per decode(): the sequences of the batch
  std::vector<const uint16_t*> attn_ptrs_;  // per layer: K then V block pointers of each span
  std::vector<size_t> attn_first_;         // index into attn_ptrs_ per span
  phase_times times_;
};

}  // namespace fp::engine
