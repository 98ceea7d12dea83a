// fastpath make-model -o FILE --vocab GGUF [--preset NAME | --dim N --layers N --heads N
//                     --kv-heads N --ff N] [--type Q4_0|Q4_K|Q8_0|F16|F32|...] [--output-type T]
//                     [--embd-type T] [--seed N]
// Writes a llama-architecture GGUF v3 file with random weights (see src/engine/make_model.hpp).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>
#include <memory>
#include <string>

#include "engine/make_model.hpp"

namespace fp::cli {
namespace {

struct make_model_args {
  std::string out, vocab, preset = "llama-1b", type = "Q4_0", output_type, embd_type;
  int dim = 0, layers = 0, heads = 0, kv_heads = 0, ff = 0, ctx = 0;
  float rope_base = 0;
  uint64_t seed = 1;
};

engine::ggml_type parse_type(const std::string& s) {
  using engine::ggml_type;
  for (ggml_type t : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q4_0, ggml_type::q8_0,
                      ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k})
    if (engine::type_name(t) == s) return t;
  throw CLI::ValidationError("--type", "unknown type " + s + " (F32 F16 BF16 Q4_0 Q8_0 Q4_K Q5_K Q6_K)");
}

void run(const make_model_args& a) {
  auto shape = engine::shape_preset(a.preset);
  if (!shape) {
    std::string names;
    for (auto n : engine::shape_preset_names()) names += " " + std::string(n);
    throw CLI::ValidationError("--preset", "unknown preset " + a.preset + " (known:" + names + ")");
  }
  if (a.dim) shape->n_embd = a.dim, shape->name = "custom";
  if (a.layers) shape->n_layer = a.layers;
  if (a.heads) shape->n_head = a.heads;
  if (a.kv_heads) shape->n_head_kv = a.kv_heads;
  if (a.ff) shape->n_ff = a.ff;
  if (a.ctx) shape->n_ctx = a.ctx;
  if (a.rope_base > 0) shape->rope_freq_base = a.rope_base;
  engine::make_model_options o;
  o.shape = *shape;
  o.type = parse_type(a.type);
  if (!a.output_type.empty()) o.output_type = parse_type(a.output_type);
  if (!a.embd_type.empty()) o.embd_type = parse_type(a.embd_type);
  o.vocab_path = a.vocab;
  o.out_path = a.out;
  o.seed = a.seed;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = engine::make_model(o);
  if (!r) {
    fmt::print(stderr, "fastpath make-model: {}\n", r.error().message);
    throw CLI::RuntimeError(1);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("wrote {}: {} {}L dim {} heads {}/{} ff {} vocab {} {}; {:.3f} B params, {:.3f} GB, {} tensor(s) in a "
             "fallback type; {:.1f} s\n",
             a.out, shape->name, shape->n_layer, shape->n_embd, shape->n_head, shape->n_head_kv, shape->n_ff,
             r->n_vocab, a.type, static_cast<double>(r->n_params) / 1e9, static_cast<double>(r->file_bytes) / 1e9,
             r->n_fallback_tensors, s);
}

}  // namespace

void register_make_model(CLI::App& app) {
  auto a = std::make_shared<make_model_args>();
  auto* c = app.add_subcommand("make-model", "write a GGUF model with random weights (for benchmarks)");
  c->add_option("-o,--output", a->out, "output GGUF path (keep it outside the repository)")->required();
  c->add_option("--vocab", a->vocab, "GGUF file whose tokenizer.* metadata is copied")->required();
  c->add_option("--preset", a->preset,
                "shape: llama-1b, llama-3.2-1b, tinyllama-1.1b, llama-2-7b, mistral-7b, stories260K")
      ->capture_default_str();
  c->add_option("--type", a->type, "type of the matrices: F32 F16 BF16 Q4_0 Q8_0 Q4_K Q5_K Q6_K")
      ->capture_default_str();
  c->add_option("--output-type", a->output_type, "type of output.weight (default: --type)");
  c->add_option("--embd-type", a->embd_type, "type of token_embd.weight (default: --type)");
  c->add_option("--dim", a->dim, "override: embedding width");
  c->add_option("--layers", a->layers, "override: layer count");
  c->add_option("--heads", a->heads, "override: attention heads");
  c->add_option("--kv-heads", a->kv_heads, "override: key/value heads");
  c->add_option("--ff", a->ff, "override: feed-forward width");
  c->add_option("--ctx", a->ctx, "override: context length");
  c->add_option("--rope-base", a->rope_base, "override: RoPE frequency base");
  c->add_option("--seed", a->seed, "random seed")->capture_default_str();
  c->callback([a] { run(*a); });
}

}  // namespace fp::cli
