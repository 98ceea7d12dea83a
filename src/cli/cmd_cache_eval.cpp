// `fastpath cache-eval`: runs the semantic cache's decision (embedder + threshold + guard) over a
// labelled pairs file and prints hits and wrong hits per kind and in total.
#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <cstdio>
#include <fstream>
#include <algorithm>
#include <map>
#include <string>

#include "cache/semantic.hpp"

namespace fp::cli {

namespace {
struct kind_stats {
  int pairs = 0, hits = 0;
  bool hit_label = false;
  std::map<std::string, int> rejects;
};
}  // namespace

void register_cache_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("cache-eval", "Evaluate the semantic cache on labelled question pairs");
  struct opts {
    std::string pairs;
    fp::cache::config cfg;
    double threshold = 0;  // 0: the embedder's default
    bool verbose = false;
  };
  auto o = std::make_shared<opts>();
  cmd->add_option("--pairs", o->pairs, "JSON Lines file: {a, b, label: hit|miss, kind}")->required();
  cmd->add_option("--embedder", o->cfg.semantic_embedder,
                  "embedder: lexical (built in), local (a GGUF model on the engine), upstream (/v1/embeddings)");
  cmd->add_option("--threshold", o->threshold, "cosine similarity threshold (default: the embedder's)");
  cmd->add_option("--model", o->cfg.semantic_local_model, "local: the GGUF model")->capture_default_str();
  cmd->add_option("--embeddings-url", o->cfg.semantic_embeddings_url,
                  "upstream: OpenAI-compatible base URL, e.g. http://127.0.0.1:8081/v1");
  cmd->add_option("--embeddings-model", o->cfg.semantic_embeddings_model, "upstream: model name")->capture_default_str();
  cmd->add_option("--embeddings-dim", o->cfg.semantic_embeddings_dim, "upstream: dimensions")->capture_default_str();
  cmd->add_option("--embeddings-api-key-env", o->cfg.semantic_embeddings_api_key_env, "upstream: env var with the API key");
  cmd->add_flag("-v,--verbose", o->verbose, "print every wrong hit and missed hit");
  cmd->callback([o] {
    boost::asio::io_context io;  // outlives the embedder (its pooled connections live on io)
    std::shared_ptr<fp::cache::embedder> emb;
    try {
      emb = fp::cache::make_embedder(o->cfg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cache-eval: %s\n", e.what());
      throw CLI::RuntimeError(2);
    }
    double threshold = o->threshold > 0 ? o->threshold : emb->default_threshold();
    auto embed = [&](const std::string& text) -> std::vector<float> {
      auto f = boost::asio::co_spawn(io, emb->embed(text), boost::asio::use_future);
      io.restart();
      io.run();
      auto r = f.get();
      if (!r) {
        std::fprintf(stderr, "cache-eval: embedder %s: %s\n", o->cfg.semantic_embedder.c_str(), r.error().message.c_str());
        throw CLI::RuntimeError(2);
      }
      return std::move(*r);
    };
    std::ifstream in(o->pairs);
    if (!in) {
      std::fprintf(stderr, "cache-eval: cannot open %s\n", o->pairs.c_str());
      throw CLI::RuntimeError(2);
    }
    std::map<std::string, kind_stats> kinds;
    // Cosine similarities: paraphrases, near-misses, and unrelated questions (a of one pair
    // against b of another): how well the embedder alone separates them, before the guard.
    std::vector<double> sim_para, sim_near, sim_unrelated;
    std::vector<std::vector<float>> vecs_a, vecs_b;
    auto dot = [](const std::vector<float>& x, const std::vector<float>& y) {
      double s = 0;
      for (size_t i = 0; i < x.size() && i < y.size(); ++i) s += double(x[i]) * y[i];
      return s;
    };
    int wrong = 0, should = 0, hit_ok = 0, lineno = 0;
    std::string line;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty()) continue;
      boost::system::error_code ec;
      auto v = boost::json::parse(line, ec);
      if (ec || !v.is_object()) {
        std::fprintf(stderr, "cache-eval: line %d: not a JSON object\n", lineno);
        throw CLI::RuntimeError(2);
      }
      auto& ob = v.get_object();
      auto str = [&](const char* k) -> std::string {
        auto f = ob.find(k);
        return f != ob.end() && f->value().is_string() ? std::string(f->value().get_string()) : std::string();
      };
      std::string a = str("a"), b = str("b"), label = str("label"), kind = str("kind");
      if (a.empty() || b.empty() || (label != "hit" && label != "miss")) {
        std::fprintf(stderr, "cache-eval: line %d: needs a, b and label hit|miss\n", lineno);
        throw CLI::RuntimeError(2);
      }
      if (kind.empty()) kind = label;
      // The cache holds a; b looks it up (one scope per pair).
      fp::cache::semantic_index idx(emb->dim(), 4);
      auto va = embed(a), vb = embed(b);
      (label == "hit" ? sim_para : sim_near).push_back(dot(va, vb));
      vecs_a.push_back(va);
      vecs_b.push_back(vb);
      idx.add("pair", va, {"a", a, INT64_MAX});
      auto cands = idx.search("pair", vb, 1, threshold, 0);
      bool hit = false;
      std::string why = "below threshold";
      if (!cands.empty()) {
        auto r = fp::cache::semantic_guard(cands[0].rec.text, b);
        hit = r == fp::cache::reject_reason::none;
        if (!hit) why = std::string(fp::cache::reject_reason_name(r));
      }
      auto& ks = kinds[kind];
      ks.pairs++;
      ks.hit_label = label == "hit";
      if (hit) ks.hits++;
      else ks.rejects[why]++;
      if (label == "hit") {
        should++;
        if (hit) hit_ok++;
        else if (o->verbose) std::printf("  missed [%s] %s | %s (%s)\n", kind.c_str(), a.c_str(), b.c_str(), why.c_str());
      } else if (hit) {
        wrong++;
        if (o->verbose) std::printf("  WRONG  [%s] %s | %s\n", kind.c_str(), a.c_str(), b.c_str());
      }
    }
    std::printf("embedder=%s threshold=%.3f\n", std::string(emb->name()).c_str(), threshold);
    std::printf("%-24s %6s %6s %10s  %s\n", "kind", "pairs", "hits", "wrong_hits", "rejections");
    for (auto& [k, s] : kinds) {
      std::string rej;
      for (auto& [r, n] : s.rejects) rej += r + "=" + std::to_string(n) + " ";
      std::printf("%-24s %6d %6d %10d  %s\n", k.c_str(), s.pairs, s.hits, s.hit_label ? 0 : s.hits, rej.c_str());
    }
    for (size_t i = 0; i < vecs_a.size(); ++i) sim_unrelated.push_back(dot(vecs_a[i], vecs_b[(i + vecs_a.size() / 2) % vecs_a.size()]));
    auto pct = [](std::vector<double> v, double q) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[static_cast<size_t>(q * double(v.size() - 1))];
    };
    for (auto& [name, v] : {std::pair<const char*, std::vector<double>&>{"paraphrase", sim_para},
                            {"near-miss", sim_near}, {"unrelated", sim_unrelated}})
      std::printf("similarity %-10s n=%-4zu p10=%.3f p50=%.3f p90=%.3f\n", name, v.size(), pct(v, 0.1), pct(v, 0.5),
                  pct(v, 0.9));
    double rate = should ? double(hit_ok) / should : 0.0;
    std::printf("total: pairs=%d should_hit=%d hits=%d wrong_hits=%d\n", lineno, should, hit_ok, wrong);
    std::printf("wrong_hits=%d hit_rate=%.3f\n", wrong, rate);
  });
}

}  // namespace fp::cli
