// `fastpath make-model`: writes a llama-architecture GGUF v3 file with random weights of a given
// shape and type, the vocabulary (tokenizer.* metadata) copied from another GGUF file, so speed
// can be measured at realistic sizes without downloading weights. The file follows llama.cpp's
// conventions (metadata keys, tensor names, ggml dimension order, 32-byte alignment), so both
// fastpath and llama.cpp read it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"
#include "engine/kernels.hpp"

namespace fp::engine {

struct model_shape {
  std::string name = "custom";
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int n_ff = 0;
  int n_ctx = 4096;
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_output = false;  // no output.weight; the token embedding is reused
};

// Known shapes: "llama-1b" (llama.cpp's ENGINE.md reference: Llama-3.2-1B dims, untied, for a
// 32000 vocab), "llama-3.2-1b" (tied), "tinyllama-1.1b", "llama-2-7b", "mistral-7b",
// "stories260K". nullopt if unknown.
std::optional<model_shape> shape_preset(std::string_view name);
std::vector<std::string_view> shape_preset_names();

struct make_model_options {
  model_shape shape;
  ggml_type type = ggml_type::q4_0;              // the 2-D weights
  std::optional<ggml_type> output_type;          // output.weight (default: type)
  std::optional<ggml_type> embd_type;            // token_embd.weight (default: type)
  std::string vocab_path;                        // GGUF file whose tokenizer.* keys are copied
  std::string out_path;
  uint64_t seed = 1;
  float weight_std = 0.02f;                      // random weights ~ uniform with this std
};

struct make_model_report {
  uint64_t file_bytes = 0;
  uint64_t n_params = 0;
  int n_vocab = 0;
  int n_fallback_tensors = 0;  // tensors written in another type (row length not a block multiple)
};

// Errors: io_error (cannot read the vocabulary or write the output), invalid_request (bad shape
// or a vocabulary without tokenizer.ggml.tokens), unsupported (type).
result<make_model_report> make_model(const make_model_options& o);

// The type a tensor of row length `cols` is written in when `want` does not fit (as llama.cpp's
// quantiser falls back): K-quants -> Q8_0 -> F16.
ggml_type fallback_type(ggml_type want, int64_t cols) noexcept;

}  // namespace fp::engine
