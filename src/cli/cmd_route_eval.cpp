// fastpath route-eval --queries FILE [--config FILE] [--dump-features]
// Scores every labelled query of a JSONL file (fields: query, label = simple|moderate|complex) with
// the complexity scorer and the configured tiers, prints the confusion matrix, the cost per request
// and, as the last line, `accuracy=A within_one_tier=W complex_to_small=C`.
// --dump-features prints one JSON object per query instead ({"label":..,"x":[..]}), the input of
// scripts/fit-router.py.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "routing/routing.hpp"

namespace fp::cli {
namespace {

struct labelled {
  std::string query;
  int label = -1;  // 0 simple, 1 moderate, 2 complex
};

int label_index(std::string_view s) {
  if (s == "simple") return 0;
  if (s == "moderate") return 1;
  if (s == "complex") return 2;
  return -1;
}

std::vector<labelled> read_queries(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<labelled> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    if (ec || !v.is_object()) throw std::runtime_error(fmt::format("{}:{}: not a JSON object", path, lineno));
    const auto& o = v.as_object();
    auto q = o.if_contains("query");
    auto l = o.if_contains("label");
    if (!q || !q->is_string() || !l || !l->is_string())
      throw std::runtime_error(fmt::format("{}:{}: needs string fields query and label", path, lineno));
    int li = label_index(l->as_string());
    if (li < 0) throw std::runtime_error(fmt::format("{}:{}: unknown label", path, lineno));
    out.push_back({std::string(q->as_string()), li});
  }
  return out;
}

void run(const std::string& queries_path, const std::string& config_path, bool dump) {
  routing::routing_config cfg;
  if (!config_path.empty()) cfg = routing::load_routing_config_file(config_path);
  routing::complexity_scorer scorer(cfg.scorer);
  auto rows = read_queries(queries_path);
  if (rows.empty()) throw std::runtime_error("no queries in " + queries_path);

  if (dump) {
    for (const auto& r : rows) {
      routing::score_input in;
      in.text = r.query;
      auto x = scorer.features(in);
      std::string line = "{\"label\":" + std::to_string(r.label) + ",\"x\":[";
      for (size_t i = 0; i < x.size(); ++i) line += (i ? "," : "") + fmt::format("{:.6g}", x[i]);
      line += "]}";
      std::puts(line.c_str());
    }
    return;
  }

  // Tiers: an alias's tiers decide; route-eval only needs the index (0 small, 1 mid, 2+ strong).
  routing::tier_map tiers = cfg.aliases.empty() ? routing::tier_map::defaults("small", "mid", "strong")
                                                : cfg.aliases.front().tiers;
  int m[3][3] = {};
  double total_us = 0;
  for (const auto& r : rows) {
    routing::score_input in;
    in.text = r.query;
    auto t0 = std::chrono::steady_clock::now();
    auto s = scorer.score(in);
    auto t1 = std::chrono::steady_clock::now();
    total_us += std::chrono::duration<double, std::micro>(t1 - t0).count();
    int p = std::min(tiers.index(s.score), 2);
    ++m[r.label][p];
  }
  const char* names[3] = {"simple", "moderate", "complex"};
  std::printf("confusion matrix (rows: label, columns: routed tier)\n");
  std::printf("%-10s %8s %8s %8s\n", "", "small", "mid", "strong");
  int n = 0, exact = 0, within = 0;
  for (int i = 0; i < 3; ++i) {
    std::printf("%-10s %8d %8d %8d\n", names[i], m[i][0], m[i][1], m[i][2]);
    for (int j = 0; j < 3; ++j) {
      n += m[i][j];
      if (i == j) exact += m[i][j];
      if (std::abs(i - j) <= 1) within += m[i][j];
    }
  }
  int complex_n = m[2][0] + m[2][1] + m[2][2];
  double c2s = complex_n ? static_cast<double>(m[2][0]) / complex_n : 0.0;
  std::printf("queries=%d mean_score_us=%.2f\n", n, total_us / n);
  std::printf("accuracy=%.3f within_one_tier=%.3f complex_to_small=%.3f\n",
              static_cast<double>(exact) / n, static_cast<double>(within) / n, c2s);
}

}  // namespace

void register_route_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("route-eval", "Evaluate the complexity router on labelled queries");
  auto queries = std::make_shared<std::string>();
  auto config = std::make_shared<std::string>();
  auto dump = std::make_shared<bool>(false);
  cmd->add_option("--queries", *queries, "JSONL file with query and label fields")->required();
  cmd->add_option("--config", *config, "fastpath config (YAML) with a routing section");
  cmd->add_flag("--dump-features", *dump, "print feature vectors (for scripts/fit-router.py)");
  cmd->callback([queries, config, dump] { run(*queries, *config, *dump); });
}

}  // namespace fp::cli
