#include "engine/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace fp::engine {

float logsumexp(std::span<const float> logits) noexcept {
  float mx = -std::numeric_limits<float>::infinity();
  for (float v : logits) mx = std::max(mx, v);
  if (!std::isfinite(mx)) return mx;
  double s = 0;
  for (float v : logits) s += std::exp(static_cast<double>(v - mx));
  return mx + static_cast<float>(std::log(s));
}

std::vector<token_logprob> top_logprobs(std::span<const float> logits, int n) {
  std::vector<token_logprob> out;
  if (n <= 0 || logits.empty()) return out;
  n = std::min<int>(n, static_cast<int>(logits.size()));
  float lse = logsumexp(logits);
  std::vector<int32_t> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), better);
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back({idx[i], logits[idx[i]] - lse});
  return out;
}

sampler::sampler(const sampling_params& p) : p_(p), rng_(p.seed) {}

sample_result sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const size_t n = logits.size();
  sample_result r;
  work_.assign(logits.begin(), logits.end());

  // Penalties over the recent window.
  bool penalise = p_.repetition_penalty != 1.0f || p_.presence_penalty != 0.0f ||
                  p_.frequency_penalty != 0.0f;
  if (penalise && !history.empty()) {
    size_t window = p_.penalty_last_n < 0 ? history.size()
                                          : std::min(history.size(), static_cast<size_t>(p_.penalty_last_n));
    auto recent = history.subspan(history.size() - window);
    counts_.assign(n, 0);
    for (int32_t t : recent)
      if (t >= 0 && static_cast<size_t>(t) < n) ++counts_[static_cast<size_t>(t)];
    for (int32_t t : recent) {
      if (t < 0 || static_cast<size_t>(t) >= n) continue;
      int32_t c = counts_[static_cast<size_t>(t)];
      if (c == 0) continue;  // already handled (duplicates in the window)
      float& l = work_[static_cast<size_t>(t)];
      if (p_.repetition_penalty != 1.0f) l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
      l -= static_cast<float>(c) * p_.frequency_penalty + p_.presence_penalty;
      counts_[static_cast<size_t>(t)] = 0;
    }
  }

  if (p_.temperature <= 0.0f) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
      if (work_[i] > work_[best]) best = i;
    r.id = static_cast<int32_t>(best);
  } else {
    // Candidates sorted by logit, most likely first.
    idx_.resize(n);
    std::iota(idx_.begin(), idx_.end(), 0);
    size_t k = n;
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) k = static_cast<size_t>(p_.top_k);
    auto better = [&](int32_t a, int32_t b) {
      return work_[a] > work_[b] || (work_[a] == work_[b] && a < b);
    };
    if (k < n) {
      std::partial_sort(idx_.begin(), idx_.begin() + static_cast<ptrdiff_t>(k), idx_.end(), better);
      idx_.resize(k);
    } else {
      std::sort(idx_.begin(), idx_.end(), better);
    }
    // Probabilities at temperature 1 for top-p / min-p (llama.cpp applies them before temp).
    probs_.resize(idx_.size());
    float mx = work_[idx_[0]];
    double sum = 0;
    for (size_t i = 0; i < idx_.size(); ++i) {
      probs_[i] = std::exp(work_[idx_[i]] - mx);
      sum += probs_[i];
    }
    size_t keep = idx_.size();
    if (p_.top_p < 1.0f) {
      double cum = 0;
      for (size_t i = 0; i < idx_.size(); ++i) {
        cum += probs_[i] / sum;
        if (cum >= p_.top_p) {
          keep = i + 1;
          break;
        }
      }
    }
    if (p_.min_p > 0.0f) {
      float floor = p_.min_p * probs_[0];  // relative to the most likely token
      size_t m = 1;
      while (m < keep && probs_[m] >= floor) ++m;
      keep = m;
    }
    idx_.resize(keep);
    // Temperature, then draw.
    probs_.resize(keep);
    double total = 0;
    for (size_t i = 0; i < keep; ++i) {
      probs_[i] = std::exp((work_[idx_[i]] - mx) / p_.temperature);
      total += probs_[i];
    }
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) * total;
    size_t pick = keep - 1;
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += probs_[i];
      if (u < cum) {
        pick = i;
        break;
      }
    }
    r.id = idx_[pick];
  }

  float lse = logsumexp(logits);
  r.logprob = logits[static_cast<size_t>(r.id)] - lse;
  if (p_.n_logprobs > 0) r.top = top_logprobs(logits, p_.n_logprobs);
  return r;
}

// ---- stop strings -------------------------------------------------------------------------------

stop_matcher::stop_matcher(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string stop_matcher::feed(std::string_view text) {
  if (stopped_) return {};
  pending_.append(text);
  // A complete stop string: emit what precedes the earliest one and stop.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    size_t maxl = std::min(s.size() - 1, pending_.size());
    for (size_t l = maxl; l > hold; --l)
      if (pending_.compare(pending_.size() - l, l, s, 0, l) == 0) {
        hold = l;
        break;
      }
  }
  size_t emit = pending_.size() - hold;
  emit = utf8_complete_prefix(std::string_view(pending_).substr(0, emit));
  std::string out = pending_.substr(0, emit);
  pending_.erase(0, emit);
  return out;
}

std::string stop_matcher::flush() {
  if (stopped_) return {};
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

size_t utf8_complete_prefix(std::string_view s) noexcept {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t n = s.size();
  size_t i = n;
  int cont = 0;
  while (i > 0 && cont < 4) {
    auto c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) {
      size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      return (n - (i - 1) >= len) ? n : i - 1;
    }
    ++cont;
    --i;
  }
  return n;  // only continuation bytes (invalid): do not hold back forever
}

}  // namespace fp::engine
