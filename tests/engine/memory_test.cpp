// Acceptance 6 of the engine: peak memory = mapped file + KV cache + a small documented constant.
//
// The constant (docs/design/engine.md, Memory) is the process baseline plus
// context::scratch_bound(hp, threads, kv_tokens, batch, logits) plus 1 MiB for the model's index
// (tensor views, layer table, metadata index) and allocator slack. The test resets the peak RSS
// counter (/proc/self/clear_refs, "5"), takes the RSS before loading as the baseline, then loads
// the model, runs a batched prompt and single-token decoding, and asserts
//   VmHWM - baseline - file size - KV bytes in use <= scratch_bound + 1 MiB.
// The file is counted whole (an upper bound: pages never read are never resident).
// Skipped under AddressSanitizer (its shadow memory and quarantine are part of RSS) and where
// /proc/self/clear_refs cannot be written.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/engine.hpp"
#include "engine/make_model.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define FP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FP_ASAN 1
#endif
#endif

namespace fp::engine {
namespace {

std::string shared(const std::string& rel) { return std::string(FASTPATH_SHARED_DIR) + "/" + rel; }

long status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
  return -1;
}

bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

struct run_result {
  double peak = 0, base = 0, file = 0, kv = 0, bound = 0;
};

// Loads `path`, prompt of n_prompt tokens in batches of `batch`, then n_gen decode steps.
run_result run(const std::string& path, int threads, int n_prompt, int batch, int n_gen) {
  run_result r;
  EXPECT_TRUE(reset_peak());
  r.base = static_cast<double>(status_kb("VmRSS")) * 1024;
  {
    auto m = model::load(path);
    EXPECT_TRUE(m) << (m ? "" : m.error().message);
    if (!m) return r;
    const int kv_tokens = n_prompt + n_gen;
    auto ctx = context::create(*m, {threads, kv_tokens, 16});
    EXPECT_TRUE(ctx);
    if (!ctx) return r;
    auto& c = **ctx;
    const int nv = (*m)->hp().n_vocab;
    std::vector<batch_entry> b;
    for (int p0 = 0; p0 < n_prompt; p0 += batch) {
      b.clear();
      for (int i = p0; i < std::min(n_prompt, p0 + batch); ++i) b.push_back({0, i, (i * 7919 + 13) % nv, i + 1 == n_prompt});
      EXPECT_TRUE(c.decode(b));
    }
    for (int i = 0; i < n_gen; ++i) {
      const batch_entry e{0, n_prompt + i, (i * 31 + 5) % nv, true};
      EXPECT_TRUE(c.decode({&e, 1}));
    }
    r.peak = static_cast<double>(status_kb("VmHWM")) * 1024;
    r.file = static_cast<double>((*m)->file().bytes().size());
    r.kv = static_cast<double>(c.kv().block_bytes()) * (c.kv().blocks_total() - c.kv().blocks_free());
    r.bound = static_cast<double>(context::scratch_bound((*m)->hp(), threads, kv_tokens, batch, 1));
  }
  return r;
}

constexpr double k_index_slack = 1 << 20;  // model index + allocator slack (documented)

void check(const run_result& r, const char* what) {
  const double mib = 1 << 20;
  const double rest = r.peak - r.base - r.file - r.kv;
  std::printf("[ memory   ] %s: peak RSS %.2f MiB = baseline %.2f + file %.2f + KV %.2f + %.2f MiB "
              "(allowed: scratch bound %.2f + 1 MiB)\n",
              what, r.peak / mib, r.base / mib, r.file / mib, r.kv / mib, rest / mib, r.bound / mib);
  EXPECT_LE(rest, r.bound + k_index_slack) << what;
}

TEST(EngineMemory, PeakIsFilePlusKvPlusConstantStories260K) {
#ifdef FP_ASAN
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine count in RSS";
#endif
  const auto path = shared("models/stories260K.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  if (!reset_peak()) GTEST_SKIP() << "cannot reset the peak RSS (/proc/self/clear_refs)";
  for (int threads : {1, 2}) {
    const auto r = run(path, threads, 300, 256, 100);
    check(r, threads == 1 ? "stories260K, 1 thread" : "stories260K, 2 threads");
  }
}

// A llama-shaped model big enough for every prefill path (AMX / VNNI: 512-column rows, batches
// of >= 16 tokens): the scratch bound must hold there too.
TEST(EngineMemory, PeakIsFilePlusKvPlusConstantMadeModel) {
#ifdef FP_ASAN
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine count in RSS";
#endif
  const auto vocab = shared("tokenizers/llama-vocab/ggml-vocab-llama-spm.gguf");
  if (!std::filesystem::exists(vocab)) GTEST_SKIP() << "missing " << vocab;
  if (!reset_peak()) GTEST_SKIP() << "cannot reset the peak RSS (/proc/self/clear_refs)";
  const auto out = (std::filesystem::temp_directory_path() /
                    ("fp_memory_test_" + std::to_string(::getpid()) + ".gguf")).string();
  make_model_options o;
  o.shape = {"test", 512, 2, 8, 2, 1536, 512, 10000.0f, 1e-5f, false};
  o.type = ggml_type::q4_0;
  o.vocab_path = vocab;
  o.out_path = out;
  auto mk = make_model(o);
  ASSERT_TRUE(mk) << mk.error().message;
  const auto r = run(out, 2, 200, 64, 20);
  std::filesystem::remove(out);
  check(r, "512-dim Q4_0 model, 2 threads, batches of 64");
}

}  // namespace
}  // namespace fp::engine
