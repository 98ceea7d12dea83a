// `fastpath mock`: the standalone simulated upstream (src/providers/mock_server.cpp).
#include <CLI/CLI.hpp>

#include "providers/mock.hpp"

namespace fp::cli {

void register_mock(CLI::App& app) {
  auto opts = std::make_shared<providers::mock_server_options>();
  auto format = std::make_shared<std::string>("openai");
  auto* cmd = app.add_subcommand("mock", "Run a simulated OpenAI or Anthropic upstream (for tests and benchmarks)");
  cmd->add_option("--host", opts->host, "Address to bind")->capture_default_str();
  cmd->add_option("--port", opts->port, "Port (0: pick one; printed as 'listening HOST:PORT')")->capture_default_str();
  cmd->add_option("--profile", opts->profile,
                  "Latency profile: gpt-4o, gpt-4o-mini, claude-3-haiku, local-7b, zero, tail")
      ->capture_default_str();
  cmd->add_option("--format", *format, "Wire format: openai or anthropic")
      ->check(CLI::IsMember({"openai", "anthropic"}))
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Random seed (same seed, same request order: same timings)")->capture_default_str();
  cmd->add_option("--threads", opts->threads, "Worker threads (one io_context each)")->capture_default_str();
  cmd->callback([opts, format] {
    opts->format = *format == "anthropic" ? api::wire_format::anthropic : api::wire_format::openai;
    int rc = providers::run_mock_server(*opts);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace fp::cli
