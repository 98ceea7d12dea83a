// The complexity scorer: a fast, explainable estimate of how strong a model a request needs.
// Included through routing/routing.hpp; no Asio, no JSON parsing on the hot path beyond the
// message texts the caller hands in.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace fp::routing {

// Counts the tokens of a text. The default is a cheap estimate (about 4 bytes per token for
// Latin scripts, one token per CJK character); the gateway can switch in the real tokenizer.
using token_counter = std::function<int64_t(std::string_view)>;
int64_t estimate_tokens(std::string_view text) noexcept;

// The features of a request, in a fixed order. Values are small (mostly 0..1, a few centred
// logs); names double as the explanation vocabulary in x-fastpath-route reasons.
enum class feature : uint8_t {
  length,        // log2 tokens of the instruction, centred at ~16 tokens
  material,      // log2 tokens of pasted material (code blocks, quoted text) the task is about
  code,          // a code block is present
  proof,         // prove / derive / justify
  design,        // system or data design, architecture
  algorithm,     // algorithms, complexity, O(...), concurrency primitives
  debug,         // several faults: bugs, crashes, leaks, races
  math,          // math vocabulary and symbols
  numbers,       // how many numbers the instruction carries (word problems)
  multi_step,    // reasoning cues: why, step, calculate, evaluate, trade-offs
  constraints,   // must, only, without, at least, budget, deadlines, list items
  expert,        // legal, medical, financial-planning vocabulary
  task,          // explain / compare / write / summarise / how-to: moderate work
  factual,       // what is / who / define / convert / greetings: lookup-style work
  multi_part,    // several questions or sub-requests
  depth,         // conversation depth (earlier turns)
  tools,         // tools offered to the model
  non_english,   // share of non-ASCII letters
  count_,
};
inline constexpr size_t feature_count = static_cast<size_t>(feature::count_);
std::string_view feature_name(feature f) noexcept;
using feature_vector = std::array<double, feature_count>;

// What the scorer looks at. Views must outlive the call.
struct score_input {
  std::string_view text;    // the last user message (the task), plain text incl. code blocks
  std::string_view system;  // system prompt(s), joined ("" if none)
  int64_t prompt_tokens = -1;  // tokens of the whole prompt if known (-1: estimate)
  int turns = 1;            // user+assistant messages so far, including this one
  int tools = 0;            // tools/functions offered
};

struct score_result {
  double score = 0;  // in [0, 1]
  feature_vector features{};
  // Up to three features that pushed the score hardest towards its side of 0.5, e.g.
  // {"short", "factual"}; short/long stand for the length feature's sign.
  std::array<std::string_view, 3> reasons{};
  int reason_count = 0;
  std::string reasons_joined() const;  // "short,factual"
};

struct scorer_weights {
  double bias = 0;
  feature_vector w{};
  // The labelling rule "every request for a proof needs the strongest model" as a floor: a
  // request with a proof cue scores at least this (all 22 proof-cue queries of the evaluation
  // set are complex). 0 disables it.
  double proof_floor = 0.75;
  static const scorer_weights& defaults() noexcept;  // fitted by scripts/fit-router.py
};

class complexity_scorer {
 public:
  explicit complexity_scorer(scorer_weights w = scorer_weights::defaults(),
                             token_counter tokens = {});
  // Pure function of the input; thread-safe; allocates nothing.
  score_result score(const score_input& in) const noexcept;
  // Only the feature extraction (used by route-eval --dump-features and the fitting script).
  feature_vector features(const score_input& in) const noexcept;
  const scorer_weights& weights() const noexcept { return w_; }

 private:
  int64_t count_tokens(std::string_view s) const noexcept;
  scorer_weights w_;
  token_counter tokens_;
};

// Score ranges -> model tiers. Tiers are checked in order: the first with score < upper (or
// <= upper when inclusive) wins; the last catches everything.
struct tier {
  std::string name;   // "small", "mid", "strong"
  std::string model;  // model (or model group) name to route to
  double upper = 1.0;
  bool inclusive = false;
};

struct tier_map {
  std::vector<tier> tiers;
  // The seed's rule: < 0.3 small, <= 0.7 mid, else strongest.
  static tier_map defaults(std::string small, std::string mid, std::string strong);
  const tier& pick(double score) const noexcept;  // tiers must be non-empty
  int index(double score) const noexcept;
};

}  // namespace fp::routing
