// One generation: prompt -> tokens -> text, on a context, with sampling, stop strings, EOG and
// streamed text deltas. Shared by `fastpath generate` and the local provider.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/common.hpp"
#include "engine/model.hpp"
#include "engine/sampling.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fp::engine {

struct generate_request {
  std::vector<int32_t> prompt;       // token ids (BOS included if wanted)
  int n_predict = 128;               // maximum new tokens (< 0: until the context is full)
  sampling_params sampling;
  std::vector<std::string> stop;     // stop strings (not included in the text)
  bool stop_at_eog = true;           // stop at end-of-generation tokens (EOS, EOT, ...)
  int prompt_batch = 256;            // prompt tokens per forward pass
  const std::atomic<bool>* cancel = nullptr;  // checked before every forward pass
};

enum class stop_reason { length, eog, stop_string, cancelled, context_full };
std::string_view stop_reason_name(stop_reason r) noexcept;

// One step's output, passed to the callback as soon as the token exists.
struct generated_token {
  int32_t id = 0;         // -1 for the final flush of held-back text (no new token)
  std::string_view text;  // text released by this token (may be empty: partial UTF-8 or a
                          // possible stop-string prefix held back)
  float logprob = 0.0f;
  const std::vector<token_logprob>* top = nullptr;  // when sampling.n_logprobs > 0
};

struct generate_result {
  std::vector<int32_t> ids;  // generated ids (an EOG token that stopped generation included)
  std::string text;          // all released text
  stop_reason reason = stop_reason::length;
  int n_prompt = 0;
  int64_t prompt_ns = 0;     // prompt processing time (until the first token's logits)
  int64_t gen_ns = 0;        // time of the remaining decode steps
};

// Return false from the callback to cancel (the result then has reason cancelled).
using token_callback = std::function<bool(const generated_token&)>;

// Runs sequence `seq` of `ctx` (which must not exist yet) from the prompt; the sequence is
// removed from the KV cache at the end. Errors: invalid_request (empty prompt, bad ids),
// too_large (prompt longer than the context).
result<generate_result> generate(context& ctx, const tokenizer::gguf_vocab& vocab, int32_t seq,
                                 const generate_request& req, const token_callback& on_token = {});

// A thread count for a model: 1 for small models (synchronisation dominates), else `hw`.
int auto_threads(const model& m, int hw) noexcept;

}  // namespace fp::engine
