#include "engine/generate.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace fp::engine {

std::string_view stop_reason_name(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::length: return "length";
    case stop_reason::eog: return "eog";
    case stop_reason::stop_string: return "stop";
    case stop_reason::cancelled: return "cancelled";
    case stop_reason::context_full: return "context_full";
  }
  return "?";
}

int auto_threads(const model& m, int hw) noexcept {
  // Below a few MiB of weights a forward pass takes microseconds and handing work to a second
  // thread costs more than it saves (llama.cpp decodes stories260K faster on one thread too).
  if (m.weight_bytes() < (8u << 20)) return 1;
  return std::max(1, hw);
}

result<generate_result> generate(context& ctx, const tokenizer::gguf_vocab& vocab, int32_t seq,
                                 const generate_request& req, const token_callback& on_token) {
  const int n_vocab = ctx.mdl().hp().n_vocab;
  if (req.prompt.empty()) return make_error(errc::invalid_request, "generate: empty prompt");
  for (int32_t t : req.prompt)
    if (t < 0 || t >= n_vocab)
      return make_error(errc::invalid_request, fmt::format("generate: prompt token {} outside the vocabulary", t));
  if (ctx.kv().seq_exists(seq)) ctx.kv().seq_remove(seq);
  struct seq_guard {  // the sequence's blocks go back to the cache however we leave
    context& c;
    int32_t s;
    ~seq_guard() { c.kv().seq_remove(s); }
  } guard{ctx, seq};

  generate_result res;
  res.n_prompt = static_cast<int>(req.prompt.size());
  auto cancelled = [&] { return req.cancel && req.cancel->load(std::memory_order_relaxed); };

  // Prompt, in batches; logits only for the last token.
  const int64_t t0 = now_ns();
  const int nb = std::max(1, req.prompt_batch);
  std::vector<batch_entry> batch;
  batch.reserve(static_cast<size_t>(std::min<size_t>(req.prompt.size(), static_cast<size_t>(nb))));
  size_t last_index = 0;
  for (size_t i = 0; i < req.prompt.size(); i += static_cast<size_t>(nb)) {
    if (cancelled()) {
      res.reason = stop_reason::cancelled;
      return res;
    }
    batch.clear();
    size_t end = std::min(req.prompt.size(), i + static_cast<size_t>(nb));
    for (size_t j = i; j < end; ++j)
      batch.push_back({seq, static_cast<int32_t>(j), req.prompt[j], j + 1 == req.prompt.size()});
    auto r = ctx.decode(batch);
    if (!r) return r.error();
    last_index = batch.size() - 1;
  }
  const int64_t t1 = now_ns();
  res.prompt_ns = t1 - t0;

  sampler smp(req.sampling);
  stop_matcher stops(req.stop);
  std::vector<int32_t> history = req.prompt;
  history.reserve(history.size() + static_cast<size_t>(std::max(0, req.n_predict)));
  std::string piece, released;
  int32_t pos = static_cast<int32_t>(req.prompt.size());
  const int max_ctx = ctx.kv().blocks_total() * ctx.kv().block_tokens();
  for (int step = 0; req.n_predict < 0 || step < req.n_predict; ++step) {
    auto s = smp.sample(ctx.logits(last_index), history);
    res.ids.push_back(s.id);
    history.push_back(s.id);
    bool eog = req.stop_at_eog && vocab.is_eog(s.id);
    released.clear();
    if (!eog) {
      piece = vocab.token_to_piece(s.id);
      released = stops.feed(piece);
    }
    res.text += released;
    if (on_token) {
      generated_token g{s.id, released, s.logprob, req.sampling.n_logprobs > 0 ? &s.top : nullptr};
      if (!on_token(g)) {
        res.reason = stop_reason::cancelled;
        break;
      }
    }
    if (eog) {
      res.reason = stop_reason::eog;
      break;
    }
    if (stops.stopped()) {
      res.reason = stop_reason::stop_string;
      break;
    }
    if (req.n_predict >= 0 && step + 1 >= req.n_predict) {
      res.reason = stop_reason::length;
      break;
    }
    if (pos >= max_ctx) {
      res.reason = stop_reason::context_full;
      break;
    }
    if (cancelled()) {
      res.reason = stop_reason::cancelled;
      break;
    }
    batch_entry e{seq, pos++, s.id, true};
    auto r = ctx.decode({&e, 1});
    if (!r) {
      if (r.error().code == errc::too_large) {
        res.reason = stop_reason::context_full;
        break;
      }
      return r.error();
    }
    last_index = 0;
  }
  // Text held back as a possible stop-string prefix is released at the end.
  if (res.reason != stop_reason::stop_string && res.reason != stop_reason::cancelled) {
    auto tail = stops.flush();
    if (!tail.empty()) {
      res.text += tail;
      if (on_token) {
        generated_token g{-1, tail, 0.0f, nullptr};
        on_token(g);
      }
    }
  }
  res.gen_ns = now_ns() - t1;
  return res;
}

}  // namespace fp::engine
