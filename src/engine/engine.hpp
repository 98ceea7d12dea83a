// Public header of src/engine (fp_engine): the local inference engine.
//
//   model     hyper-parameters and weights of a GGUF llama/mistral/qwen2 model (model.hpp)
//   context   KV cache + scratch + thread pool; decode() runs one batched forward pass over
//             (sequence, position, token) entries: prefill, decode and draft verification alike
//   kv_cache  F16 keys/values in fixed-size blocks with per-sequence block tables (kv_cache.hpp)
//   sampler   greedy / temperature / top-k / top-p / min-p / penalties / logprobs (sampling.hpp)
//   chat templates (chat_template.hpp); compute kernels (kernels.hpp)
#pragma once

#include "engine/chat_template.hpp"
#include "engine/kernels.hpp"
#include "engine/kv_cache.hpp"
#include "engine/model.hpp"
#include "engine/sampling.hpp"
