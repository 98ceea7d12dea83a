// The local provider: serves a GGUF model with the in-process engine (src/engine).
//
// Generation runs on the provider's own engine thread (never on an io_context thread); each token's
// text is handed to the awaiting coroutine as soon as it exists and sent as an OpenAI
// chat.completion.chunk (or text_completion chunk). A false from the sink or a cancelled coroutine
// stops the generation before the next forward pass. Requests are served one at a time in
// arrival order (continuous batching comes with its own issue; the engine's batched decode
// already takes several sequences).
//
// Request fields honoured: messages (chat; content strings or text parts) / prompt (completions),
// max_tokens / max_completion_tokens, temperature (default 1, as OpenAI), top_p, top_k, min_p,
// presence_penalty, frequency_penalty, repetition_penalty, seed, stop (string or array),
// stream_options.include_usage.
#pragma once

#include <memory>
#include <string>

#include "common/common.hpp"
#include "providers/provider.hpp"
#include "providers/providers.hpp"

namespace fp::providers {

struct local_options {
  std::string chat_template;  // "" = detect from tokenizer.chat_template; else chatml, llama2,
                              // llama3, mistral, zephyr, phi3, plain
  int kv_tokens = 0;          // KV cache capacity in tokens (0: min(training context, 4096))
  int prompt_batch = 64;      // prompt tokens per forward pass (bounds scratch memory)
};

// From the deployment: model_path (required), threads (0: chosen by model size).
result<std::unique_ptr<provider>> make_local_provider(const deployment_spec& s);
result<std::unique_ptr<provider>> make_local_provider(const deployment_spec& s, const local_options& o);

}  // namespace fp::providers
