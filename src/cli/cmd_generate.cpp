// `fastpath generate`: text generation with the local engine.
//
//   fastpath generate -m model.gguf -p "Once upon a time" -n 64     streams the text to stdout,
//       prompt and generation speed to stderr
//   fastpath generate -m model.gguf --jsonl < prompts.jsonl         one JSON object per line with
//       "prompt" and "n_predict"; each is written back with "prompt_ids", "ids", "text" and
//       "stopped_eog" added (the format of ../shared/golden/stories260K/greedy.jsonl); greedy
//       unless --temp is given
#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "engine/chat_template.hpp"
#include "engine/generate.hpp"
#include "engine/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fp::cli {

namespace {

struct generate_opts {
  std::string model_path;
  std::string prompt;
  int n_predict = 128;
  float temp = 0.0f;
  bool temp_set = false;
  int top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repeat_penalty = 1.0f;
  uint64_t seed = 0xFA57FA57;
  int threads = 0;
  int ctx = 0;
  bool jsonl = false;
  bool no_bos = false;
  bool ignore_eos = false;
  std::vector<std::string> stop;
};

[[noreturn]] void fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "fastpath generate: %s\n", msg.c_str());
  throw CLI::RuntimeError(code);
}

void run_generate(const generate_opts& o) {
  auto m = engine::model::load(o.model_path);
  if (!m) fail(m.error().message);
  auto vocab = tokenizer::gguf_vocab::from_gguf((*m)->file());
  if (!vocab) fail(vocab.error().message);
  const auto& hp = (*m)->hp();
  int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = o.threads > 0 ? o.threads : engine::auto_threads(**m, hw);
  int n_ctx = o.ctx > 0 ? o.ctx : std::min(hp.n_ctx_train, 4096);
  auto ctx = engine::context::create(*m, {threads, n_ctx, 16});
  if (!ctx) fail(ctx.error().message);

  engine::generate_request base;
  base.sampling.temperature = o.temp;
  base.sampling.top_k = o.top_k;
  base.sampling.top_p = o.top_p;
  base.sampling.min_p = o.min_p;
  base.sampling.repetition_penalty = o.repeat_penalty;
  base.sampling.seed = o.seed;
  base.stop = o.stop;
  base.stop_at_eog = !o.ignore_eos;

  auto encode = [&](std::string_view text) {
    std::vector<tokenizer::token_id> ids;
    (*vocab)->encode(text, !o.no_bos, /*parse_special=*/true, ids);
    return ids;
  };

  if (o.jsonl) {
    std::string line;
    int lineno = 0;
    while (std::getline(std::cin, line)) {
      ++lineno;
      if (line.empty()) continue;
      boost::system::error_code ec;
      auto v = boost::json::parse(line, ec);
      if (ec || !v.is_object()) fail(fmt::format("line {}: not a JSON object", lineno));
      auto& obj = v.as_object();
      const auto* p = obj.if_contains("prompt");
      if (!p || !p->is_string()) fail(fmt::format("line {}: missing string field \"prompt\"", lineno));
      engine::generate_request req = base;
      req.n_predict = o.n_predict;
      if (const auto* n = obj.if_contains("n_predict")) {
        if (!n->is_int64()) fail(fmt::format("line {}: \"n_predict\" is not an integer", lineno));
        req.n_predict = static_cast<int>(n->as_int64());
      }
      req.prompt = encode(p->as_string());
      auto r = engine::generate(**ctx, **vocab, 0, req);
      if (!r) fail(fmt::format("line {}: {}", lineno, r.error().message));
      bool eog = r->reason == engine::stop_reason::eog;
      if (eog && !r->ids.empty()) r->ids.pop_back();  // the EOG token itself is not output
      boost::json::array pids, ids;
      for (auto t : req.prompt) pids.emplace_back(t);
      for (auto t : r->ids) ids.emplace_back(t);
      obj["prompt_ids"] = std::move(pids);
      obj["ids"] = std::move(ids);
      obj["text"] = r->text;
      obj["stopped_eog"] = eog;
      std::string out = boost::json::serialize(obj);
      out += '\n';
      std::fwrite(out.data(), 1, out.size(), stdout);
      std::fflush(stdout);
    }
    return;
  }

  engine::generate_request req = base;
  req.n_predict = o.n_predict;
  req.prompt = encode(o.prompt);
  std::fprintf(stderr, "model: %s, %d thread(s), kernels: %s\n", (*m)->describe().c_str(),
               (*ctx)->n_threads(), std::string(engine::kernels_isa()).c_str());
  auto r = engine::generate(**ctx, **vocab, 0, req, [](const engine::generated_token& t) {
    if (!t.text.empty()) {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  });
  std::fputc('\n', stdout);
  if (!r) fail(r.error().message);
  double pms = static_cast<double>(r->prompt_ns) / 1e6, gms = static_cast<double>(r->gen_ns) / 1e6;
  // The first generated token comes with the prompt pass; the rest are one decode step each.
  size_t steps = r->ids.empty() ? 0 : r->ids.size() - 1;
  std::fprintf(stderr, "prompt: %d tokens in %.1f ms (%.1f tokens/s)\n", r->n_prompt, pms,
               pms > 0 ? r->n_prompt * 1e3 / pms : 0.0);
  std::fprintf(stderr, "generation: %zu tokens in %.1f ms (%.1f tokens/s), stop: %s\n", steps, gms,
               gms > 0 ? static_cast<double>(steps) * 1e3 / gms : 0.0,
               std::string(engine::stop_reason_name(r->reason)).c_str());
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<generate_opts>();
  auto* cmd = app.add_subcommand("generate", "Generate text with the local engine from a GGUF model");
  cmd->add_option("-m,--model", o->model_path, "GGUF model file")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text");
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate (default 128; -1: until EOS or context end)");
  cmd->add_option("--temp", o->temp, "Temperature (default 0: greedy)")
      ->each([o](const std::string&) { o->temp_set = true; });
  cmd->add_option("--top-k", o->top_k, "Top-k (0: off)");
  cmd->add_option("--top-p", o->top_p, "Top-p (1: off)");
  cmd->add_option("--min-p", o->min_p, "Min-p (0: off)");
  cmd->add_option("--repeat-penalty", o->repeat_penalty, "Repetition penalty (1: off)");
  cmd->add_option("--seed", o->seed, "Random seed for sampling");
  cmd->add_option("-t,--threads", o->threads, "Compute threads (0: by model size)");
  cmd->add_option("-c,--ctx-size", o->ctx, "KV cache size in tokens (0: min(training context, 4096))");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable)");
  cmd->add_flag("--jsonl", o->jsonl, "Read {prompt, n_predict} objects from stdin, write them back with ids and text");
  cmd->add_flag("--no-bos", o->no_bos, "Do not add BOS to the prompt");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after end-of-generation tokens");
  cmd->callback([o] {
    if (!o->jsonl && o->prompt.empty()) fail("give a prompt with -p, or --jsonl", 2);
    run_generate(*o);
  });
}

}  // namespace fp::cli
