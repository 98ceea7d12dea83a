// `fastpath bench`: load generator for any OpenAI-compatible endpoint (src/loadgen).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "loadgen/loadgen.hpp"

namespace fp::cli {

void register_bench(CLI::App& app) {
  auto o = std::make_shared<loadgen::options>();
  auto headers = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("bench", "Load-test an OpenAI-compatible endpoint (TTFT, ITL, TPOT, latency, throughput)");
  cmd->add_option("--url", o->url, "Base URL (http://host:port/v1) or full endpoint URL")->capture_default_str();
  cmd->add_option("--model", o->model, "Model name to send")->capture_default_str();
  cmd->add_flag("--completions", o->legacy_completions, "Use the legacy /v1/completions endpoint");
  cmd->add_option("-c,--concurrency", o->concurrency, "Closed loop: concurrent requests")->capture_default_str();
  cmd->add_option("--rate", o->rate, "Open loop: Poisson arrivals per second (overrides --concurrency)");
  cmd->add_option("-n,--requests", o->requests, "Measured requests");
  cmd->add_option("-d,--duration", o->duration_s, "Measured seconds");
  cmd->add_option("--warmup", o->warmup, "Requests before measuring (default: the concurrency)");
  cmd->add_flag("--stream", o->stream, "Streaming requests (stream: true, include_usage)");
  cmd->add_option("--max-tokens", o->max_tokens, "max_tokens to send (0: omit)");
  cmd->add_option("--prompts", o->prompts_file, "File with one prompt per line (text, or a JSON request body)");
  cmd->add_option("--prompt-words", o->prompt_words, "Synthetic prompt length in words")->capture_default_str();
  cmd->add_option("-H,--header", *headers, "Extra header 'Name: value' (repeatable)");
  cmd->add_option("--timeout", o->timeout_s, "Per-request timeout, seconds")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Client threads (closed loop)")->capture_default_str();
  cmd->add_flag("--json", *json, "Print one JSON object instead of the table");
  cmd->callback([o, headers, json] {
    for (const auto& h : *headers) {
      auto c = h.find(':');
      if (c == std::string::npos) throw CLI::ValidationError("--header", "expected 'Name: value', got '" + h + "'");
      std::string v = h.substr(c + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      o->headers.emplace_back(h.substr(0, c), v);
    }
    auto r = loadgen::run(*o);
    if (!r) {
      std::fprintf(stderr, "fastpath bench: %s\n", r.error().message.c_str());
      throw CLI::RuntimeError(2);
    }
    std::string out = *json ? loadgen::format_json(*r) + "\n" : loadgen::format_table(*r);
    std::fwrite(out.data(), 1, out.size(), stdout);
    if (r->ok == 0) throw CLI::RuntimeError(1);
  });
}

}  // namespace fp::cli
