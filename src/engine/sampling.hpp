// Token sampling: penalties, top-k, top-p, min-p, temperature, seeded draws; log-probabilities
// with top-n alternatives; stop strings.
//
// Order (as llama.cpp's default chain): penalties -> top-k -> top-p -> min-p -> temperature ->
// draw. temperature <= 0 is greedy (argmax of the penalised logits). Log-probabilities are always
// those of the raw logits (softmax over the whole vocabulary before any sampler), as OpenAI and
// llama.cpp's n_probs report them.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fp::engine {

struct sampling_params {
  float temperature = 0.0f;       // <= 0: greedy
  int top_k = 0;                  // 0: off
  float top_p = 1.0f;             // 1: off
  float min_p = 0.0f;             // 0: off
  float repetition_penalty = 1.0f;  // 1: off (llama.cpp repeat_penalty: divide positive logits)
  float presence_penalty = 0.0f;    // OpenAI: -= p if the token occurred
  float frequency_penalty = 0.0f;   // OpenAI: -= f * count
  int penalty_last_n = 64;          // window of recent tokens the penalties see (-1: all)
  uint64_t seed = 0xFA57'FA57;
  int n_logprobs = 0;               // top-n alternatives to report (0: none)
};

struct token_logprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct sample_result {
  int32_t id = 0;
  float logprob = 0.0f;               // of the chosen token, from the raw logits
  std::vector<token_logprob> top;     // n_logprobs best, most probable first
};

class sampler {
 public:
  explicit sampler(const sampling_params& p = {});
  const sampling_params& params() const noexcept { return p_; }

  // Picks the next token from `logits` (n_vocab, not modified); `history` is the tokens so far
  // (prompt and generated) for the penalties.
  sample_result sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  sampling_params p_;
  std::mt19937_64 rng_;
  // Reused buffers (no allocation per token after the first).
  std::vector<float> work_;
  std::vector<int32_t> idx_;
  std::vector<float> probs_;
  std::vector<int32_t> counts_;
};

// Log-softmax helpers over raw logits.
float logsumexp(std::span<const float> logits) noexcept;
// The n most probable ids with their log-probabilities, most probable first (ties: lower id).
std::vector<token_logprob> top_logprobs(std::span<const float> logits, int n);

// Incremental stop-string matcher over streamed text. feed() returns how many bytes of the text
// seen so far are safe to emit (cannot be the start of a stop string); once a stop string is
// found, stopped() is true and the emitted text ends just before it.
class stop_matcher {
 public:
  explicit stop_matcher(std::vector<std::string> stops = {});
  // Appends text; returns the newly releasable prefix (may be empty while a partial match is
  // held back).
  std::string feed(std::string_view text);
  // At the end of generation: whatever is still held back (nothing after a stop).
  std::string flush();
  bool stopped() const noexcept { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

// Length of the longest prefix of `s` that is a complete UTF-8 sequence run (so a streamed piece
// never splits a character).
size_t utf8_complete_prefix(std::string_view s) noexcept;

}  // namespace fp::engine
