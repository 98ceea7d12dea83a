// fastpath: one binary, many subcommands. Wiring only: each cmd_<name>.cpp registers itself.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.inc"

int main(int argc, char** argv) {
  CLI::App app{"fastpath: a fast LLM gateway and local inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "fastpath 0.1.0");
  fp::cli::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Start-up and config errors end here with a clear message; the data plane never throws.
    std::fprintf(stderr, "fastpath: %s\n", e.what());
    return 1;
  }
  return 0;
}
