// Single-thread throughput of the tiktoken encodings on ../shared/tokenizers/bench-corpus.txt,
// measured the way ../shared/tokenizers/BENCH.md measures the npm package: loading not timed,
// one warm-up run, then N timed runs; median, min and max; whole-file (one encode_ordinary call)
// and per-doc (calls on ~4 KB pieces cut at blank lines). MB = 10^6 bytes of UTF-8 input.
// The result is verified: token count and the sha256 of the id stream against BENCH.md.
//
// usage: tokenizer_bench [--corpus PATH] [--runs N] [--json] [--split] [--gguf FILE]...
// --split also times the pre-tokenizer alone: hand-written scanner vs PCRE2 JIT.
// --gguf FILE (repeatable) also times that GGUF vocabulary's encode on the corpus.
#include <openssl/evp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/pretokenize.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace fp::tokenizer;

namespace {

double wall_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string sha256_ids(const std::vector<token_id>& ids) {
  std::vector<unsigned char> le(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(ids[i]);
    std::memcpy(&le[i * 4], &v, 4);  // x86-64 is little-endian
  }
  unsigned char md[32];
  unsigned len = 0;
  EVP_Digest(le.data(), le.size(), md, &len, EVP_sha256(), nullptr);
  char hex[65];
  for (unsigned i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return hex;
}

// Pieces of at least 4096 bytes, each ending after a blank line ("\n\n"), as bench.mjs cuts them.
std::vector<std::string_view> cut_docs(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t at = text.find("\n\n", start + 4096);
    size_t end = at == std::string_view::npos ? text.size() : at + 2;
    out.push_back(text.substr(start, end - start));
    start = end;
  }
  return out;
}

struct stats {
  double med, lo, hi;
};
stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

// The official split patterns, for the PCRE2-JIT comparison of the pre-tokenizer alone.
const char* const k_o200k_re =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const k_cl100k_re =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Pieces of the whole text with the hand-written scanner.
size_t split_scanner(std::string_view text, fp::tokenizer::detail::split_pattern pat) {
  fp::tokenizer::detail::scanner sc(reinterpret_cast<const unsigned char*>(text.data()), text.size());
  size_t pos = 0, n = 0;
  while (pos < text.size()) {
    pos = sc.next(pat, pos);
    ++n;
  }
  return n;
}

// Pieces of the whole text with PCRE2 (UTF + UCP, JIT-compiled).
size_t split_pcre2(std::string_view text, pcre2_code* re, pcre2_match_data* md) {
  size_t pos = 0, n = 0;
  const auto* s = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos < text.size()) {
    if (pcre2_jit_match(re, s, text.size(), pos, 0, md, nullptr) < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    pos = ov[1] > pos ? ov[1] : pos + 1;
    ++n;
  }
  return n;
}

void bench_split(const std::string& text, int runs, bool json) {
  struct row {
    const char* name;
    fp::tokenizer::detail::split_pattern pat;
    const char* re;
  };
  const row rows[] = {{"o200k_base", fp::tokenizer::detail::split_pattern::o200k, k_o200k_re},
                      {"cl100k_base", fp::tokenizer::detail::split_pattern::cl100k, k_cl100k_re}};
  for (const auto& r : rows) {
    int err;
    PCRE2_SIZE off;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r.re), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!re || pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0) {
      std::fprintf(stderr, "pcre2 compile/JIT failed for %s\n", r.name);
      continue;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
    for (const char* impl : {"scanner", "pcre2-jit"}) {
      const bool scan = !std::strcmp(impl, "scanner");
      std::vector<double> mbps, cpu;
      size_t pieces = 0;
      for (int k = -1; k < runs; ++k) {
        const double w0 = wall_s(), c0 = cpu_s();
        pieces = scan ? split_scanner(text, r.pat) : split_pcre2(text, re, md);
        const double w = wall_s() - w0, c = cpu_s() - c0;
        if (k >= 0) {
          mbps.push_back(text.size() / w / 1e6);
          cpu.push_back(text.size() / c / 1e6);
        }
      }
      const stats s = summarize(mbps), sc = summarize(cpu);
      if (json) {
        std::printf("{\"impl\":\"split:%s\",\"encoding\":\"%s\",\"mode\":\"pre-tokenize\",\"mb_per_s_median\":%.2f,"
                    "\"mb_per_s_cpu_median\":%.2f,\"pieces\":%zu}\n", impl, r.name, s.med, sc.med, pieces);
      } else {
        std::printf("%-12s split %-10s %10.2f MB/s (cpu %.2f), %zu pieces\n", r.name, impl, s.med, sc.med, pieces);
      }
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
  }
}

// GGUF vocabularies (the engine's tokenizers) on the same corpus: load and encode time.
void bench_gguf(const std::string& text, const std::vector<std::string>& paths, int runs, bool json) {
  for (const auto& path : paths) {
    const double c0 = cpu_s();
    auto v = gguf_vocab::load(path);
    const double load_cpu_ms = (cpu_s() - c0) * 1e3;
    if (!v) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), v.error().message.c_str());
      continue;
    }
    std::vector<double> mbps, cpu;
    std::vector<token_id> ids;
    for (int k = -1; k < runs; ++k) {
      ids.clear();
      const double w0 = wall_s(), t0 = cpu_s();
      (*v)->encode(text, false, false, ids);
      const double w = wall_s() - w0, c = cpu_s() - t0;
      if (k >= 0) {
        mbps.push_back(text.size() / w / 1e6);
        cpu.push_back(text.size() / c / 1e6);
      }
    }
    const stats s = summarize(mbps), sc = summarize(cpu);
    const std::string name = path.substr(path.rfind('/') + 1);
    if (json) {
      std::printf("{\"impl\":\"gguf\",\"file\":\"%s\",\"tokenizer\":\"%s\",\"mb_per_s_median\":%.2f,"
                  "\"mb_per_s_cpu_median\":%.2f,\"tokens\":%zu,\"load_cpu_ms\":%.1f}\n",
                  name.c_str(), std::string((*v)->name()).c_str(), s.med, sc.med, ids.size(), load_cpu_ms);
    } else {
      std::printf("%-36s %-22s %8.2f MB/s (cpu %.2f), %zu tokens, load %.1f ms cpu\n", name.c_str(),
                  std::string((*v)->name()).c_str(), s.med, sc.med, ids.size(), load_cpu_ms);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus = std::string(FASTPATH_SHARED_DIR) + "/tokenizers/bench-corpus.txt";
  int runs = 5;
  bool json = false, split = false;
  std::vector<std::string> gguf_paths;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
    else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else if (!std::strcmp(argv[i], "--split")) split = true;
    else if (!std::strcmp(argv[i], "--gguf") && i + 1 < argc) gguf_paths.push_back(argv[++i]);
  }
  std::ifstream in(corpus, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", corpus.c_str());
    return 2;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const auto docs = cut_docs(text);
  set_tiktoken_dir(std::string(FASTPATH_SHARED_DIR) + "/tokenizers");

  struct expect {
    const char* name;
    size_t tokens;
    const char* sha;
  };
  const expect encs[] = {
      {"o200k_base", 2718932, "17085d1e8d341a0fab892bcccf8c62bfd640f1cebf8cc960590783287dc363ab"},
      {"cl100k_base", 2864248, "e15bab1b3f688bc7afe97f78acf87306e92145111622fc0db18750fce222ccae"},
  };
  int rc = 0;
  if (!json) {
    std::printf("corpus %s: %zu bytes, %zu per-doc pieces; %d timed runs after 1 warm-up\n", corpus.c_str(),
                text.size(), docs.size(), runs);
    std::printf("%-12s %-10s %10s %10s %10s %12s %12s %8s\n", "encoding", "mode", "MB/s med", "MB/s min",
                "MB/s max", "Mtok/s med", "MB/s (cpu)", "load ms");
  }
  for (const auto& e : encs) {
    const double t0 = wall_s(), tc0 = cpu_s();
    auto loaded = tiktoken_encoding::load(
        {e.name, std::string_view(e.name) == "o200k_base" ? tiktoken_encoding::pattern::o200k
                                                          : tiktoken_encoding::pattern::cl100k,
         {}},
        std::string(FASTPATH_SHARED_DIR) + "/tokenizers/" + e.name + ".tiktoken");
    const double load_ms = (wall_s() - t0) * 1e3, load_cpu_ms = (cpu_s() - tc0) * 1e3;
    if (!loaded) {
      std::fprintf(stderr, "%s: %s\n", e.name, loaded.error().message.c_str());
      return 2;
    }
    const auto& enc = **loaded;
    // Verify.
    const auto ids = enc.encode_ordinary(text);
    const bool ok = ids.size() == e.tokens && sha256_ids(ids) == e.sha;
    if (!ok) rc = 1;
    for (const char* mode : {"whole-file", "per-doc"}) {
      const bool whole = !std::strcmp(mode, "whole-file");
      std::vector<double> mbps, cpu_mbps;
      std::vector<token_id> out;
      out.reserve(ids.size() + 16);
      size_t ntok = 0;
      for (int r = -1; r < runs; ++r) {
        out.clear();
        const double w0 = wall_s(), c0 = cpu_s();
        if (whole) {
          enc.encode_ordinary(text, out);
        } else {
          for (const auto d : docs) enc.encode_ordinary(d, out);
        }
        const double w = wall_s() - w0, c = cpu_s() - c0;
        ntok = out.size();
        if (r >= 0) {
          mbps.push_back(text.size() / w / 1e6);
          cpu_mbps.push_back(text.size() / c / 1e6);
        }
      }
      const stats s = summarize(mbps), sc = summarize(cpu_mbps);
      const double tok_per_s = s.med * 1e6 / text.size() * ntok;
      if (json) {
        std::printf("{\"impl\":\"fastpath\",\"encoding\":\"%s\",\"mode\":\"%s\",\"mb_per_s_median\":%.2f,"
                    "\"mb_per_s_min\":%.2f,\"mb_per_s_max\":%.2f,\"tokens_per_s_median\":%.0f,"
                    "\"mb_per_s_cpu_median\":%.2f,\"tokens\":%zu,\"load_ms\":%.1f,\"load_cpu_ms\":%.1f,\"verified\":%s}\n",
                    e.name, mode, s.med, s.lo, s.hi, tok_per_s, sc.med, ntok, load_ms, load_cpu_ms, ok ? "true" : "false");
      } else {
        std::printf("%-12s %-10s %10.2f %10.2f %10.2f %12.2f %12.2f %8.1f\n", e.name, mode, s.med, s.lo, s.hi,
                    tok_per_s / 1e6, sc.med, load_ms);
      }
    }
    if (!json) {
      std::printf("%-12s verify: %zu tokens, sha256 %s; load %.1f ms wall, %.1f ms cpu\n", e.name, ids.size(),
                  ok ? "matches BENCH.md" : "MISMATCH", load_ms, load_cpu_ms);
    }
  }
  // The pre-tokenizer alone: the hand-written scanner against PCRE2 with JIT on the same patterns.
  if (split) bench_split(text, runs, json);
  bench_gguf(text, gguf_paths, runs, json);
  return rc;
}
