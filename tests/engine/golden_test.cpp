// Golden tests against llama.cpp's reference outputs for stories260K (../shared/golden).
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <filesystem>
#include <fstream>

#include "engine/engine.hpp"

namespace fp::engine {
namespace {

namespace json = boost::json;

std::string shared(const std::string& rel) { return std::string(FASTPATH_SHARED_DIR) + "/" + rel; }

std::vector<json::object> read_jsonl(const std::string& path) {
  std::vector<json::object> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(json::parse(line).as_object());
  return out;
}

std::vector<int32_t> ids_of(const json::value& v) {
  std::vector<int32_t> out;
  for (const auto& x : v.as_array()) out.push_back(static_cast<int32_t>(x.to_number<int64_t>()));
  return out;
}

int32_t argmax(std::span<const float> l) {
  return static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
}

std::shared_ptr<const model> load_or_null(const std::string& name) {
  auto p = shared("models/" + name);
  if (!std::filesystem::exists(p)) return nullptr;
  auto m = model::load(p);
  EXPECT_TRUE(m) << m.error().message;
  return m ? *m : nullptr;
}

// Greedy generation: the prompt in one batch (or one token at a time), then one token per step.
std::vector<int32_t> greedy(context& ctx, int32_t seq, const std::vector<int32_t>& prompt, int n,
                            bool prompt_one_by_one = false) {
  std::vector<int32_t> out;
  std::vector<batch_entry> b;
  if (prompt_one_by_one) {
    for (size_t i = 0; i < prompt.size(); ++i) {
      batch_entry e{seq, static_cast<int32_t>(i), prompt[i], i + 1 == prompt.size()};
      EXPECT_TRUE(ctx.decode({&e, 1}));
    }
  } else {
    for (size_t i = 0; i < prompt.size(); ++i)
      b.push_back({seq, static_cast<int32_t>(i), prompt[i], i + 1 == prompt.size()});
    auto r = ctx.decode(b);
    EXPECT_TRUE(r) << r.error().message;
  }
  int32_t pos = static_cast<int32_t>(prompt.size());
  size_t last = prompt_one_by_one ? 0 : prompt.size() - 1;
  for (int s = 0; s < n; ++s) {
    int32_t t = argmax(ctx.logits(last));
    out.push_back(t);
    if (s + 1 == n) break;
    batch_entry e{seq, pos++, t, true};
    auto r = ctx.decode({&e, 1});
    EXPECT_TRUE(r) << r.error().message;
    last = 0;
  }
  return out;
}

struct greedy_case {
  const char* model;
  const char* golden;
};

class golden_greedy : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(golden_greedy, reproduces_llama_cpp_ids) {
  auto [threads, one_by_one] = GetParam();
  auto m = load_or_null("stories260K.gguf");
  if (!m) GTEST_SKIP() << "missing " << shared("models/stories260K.gguf");
  auto lines = read_jsonl(shared("golden/stories260K/greedy.jsonl"));
  ASSERT_FALSE(lines.empty());
  auto ctx = context::create(m, {threads, 512, 16});
  ASSERT_TRUE(ctx);
  int seq = 0;
  for (const auto& g : lines) {
    auto prompt = ids_of(g.at("prompt_ids"));
    auto want = ids_of(g.at("ids"));
    auto got = greedy(**ctx, seq, prompt, static_cast<int>(want.size()), one_by_one);
    EXPECT_EQ(got, want) << "prompt: " << g.at("prompt").as_string();
    (*ctx)->kv().seq_remove(seq++);
  }
  EXPECT_EQ((*ctx)->kv().blocks_free(), (*ctx)->kv().blocks_total());
}

INSTANTIATE_TEST_SUITE_P(threads, golden_greedy,
                         ::testing::Values(std::make_tuple(1, false), std::make_tuple(2, false),
                                           std::make_tuple(1, true)),
                         [](const ::testing::TestParamInfo<std::tuple<int, bool>>& i) {
                           return std::to_string(std::get<0>(i.param)) + "_threads" +
                                  (std::get<1>(i.param) ? "_prompt_one_by_one" : "_prompt_batched");
                         });

// Logits for the first 8 positions within 1e-2 absolute (the README's tolerance); top-5 order
// except where values are within the tolerance.
TEST(golden, logits_within_tolerance) {
  auto m = load_or_null("stories260K.gguf");
  if (!m) GTEST_SKIP() << "missing model";
  auto lines = read_jsonl(shared("golden/stories260K/logits.jsonl"));
  ASSERT_FALSE(lines.empty());
  for (bool batched : {false, true}) {
    auto ctx = context::create(m, {1, 512, 16});
    ASSERT_TRUE(ctx);
    double worst = 0;
    for (const auto& g : lines) {
      auto toks = ids_of(g.at("tokens"));
      std::vector<batch_entry> b;
      for (size_t i = 0; i < toks.size(); ++i) b.push_back({0, static_cast<int32_t>(i), toks[i], true});
      std::vector<std::vector<float>> got;
      if (batched) {
        ASSERT_TRUE((*ctx)->decode(b));
        for (size_t i = 0; i < toks.size(); ++i) {
          auto l = (*ctx)->logits(i);
          got.emplace_back(l.begin(), l.end());
        }
      } else {
        for (auto& e : b) {
          ASSERT_TRUE((*ctx)->decode({&e, 1}));
          auto l = (*ctx)->logits(0);
          got.emplace_back(l.begin(), l.end());
        }
      }
      const auto& pos = g.at("positions").as_array();
      for (size_t i = 0; i < pos.size(); ++i) {
        const auto& p = pos[i].as_object();
        const auto& want = p.at("logits").as_array();
        ASSERT_EQ(want.size(), got[i].size());
        for (size_t v = 0; v < want.size(); ++v) {
          double d = std::abs(want[v].to_number<double>() - got[i][v]);
          worst = std::max(worst, d);
          ASSERT_LT(d, 1e-2) << "pos " << i << " id " << v;
        }
        double lse = logsumexp(got[i]);
        EXPECT_NEAR(lse, p.at("logsumexp").to_number<double>(), 1e-2);
        auto top = top_logprobs(got[i], 5);
        const auto& wtop = p.at("top5").as_array();
        for (size_t k = 0; k < 5; ++k) {
          const auto& w = wtop[k].as_object();
          int32_t wid = static_cast<int32_t>(w.at("id").to_number<int64_t>());
          if (top[k].id != wid) {  // allowed only for a near-tie
            EXPECT_NEAR(got[i][static_cast<size_t>(top[k].id)], w.at("logit").to_number<double>(), 2e-2);
          }
          EXPECT_NEAR(top[k].logprob, w.at("logprob").to_number<double>(), 1e-2);
        }
      }
      (*ctx)->kv().seq_remove(0);
    }
    std::printf("[ golden   ] stories260K F32 %s: max |logit - llama.cpp| = %.3g\n",
                batched ? "batched" : "one token per call", worst);
  }
}

TEST(golden, logprobs_within_tolerance) {
  auto m = load_or_null("stories260K.gguf");
  if (!m) GTEST_SKIP() << "missing model";
  auto lines = read_jsonl(shared("golden/stories260K/logprobs.jsonl"));
  ASSERT_FALSE(lines.empty());
  auto ctx = context::create(m, {1, 512, 16});
  ASSERT_TRUE(ctx);
  sampling_params sp;
  sp.n_logprobs = 5;
  for (const auto& g : lines) {
    sampler smp(sp);
    auto prompt = ids_of(g.at("prompt_ids"));
    std::vector<batch_entry> b;
    for (size_t i = 0; i < prompt.size(); ++i)
      b.push_back({0, static_cast<int32_t>(i), prompt[i], i + 1 == prompt.size()});
    ASSERT_TRUE((*ctx)->decode(b));
    size_t last = prompt.size() - 1;
    std::vector<int32_t> hist = prompt;
    for (const auto& step : g.at("steps").as_array()) {
      const auto& s = step.as_object();
      auto r = smp.sample((*ctx)->logits(last), hist);
      EXPECT_EQ(r.id, s.at("id").to_number<int64_t>());
      EXPECT_NEAR(r.logprob, s.at("logprob").to_number<double>(), 2e-3);
      const auto& wtop = s.at("top5").as_array();
      ASSERT_EQ(r.top.size(), 5u);
      for (size_t k = 0; k < 5; ++k) {
        const auto& w = wtop[k].as_object();
        double wl = w.at("logprob").to_number<double>();
        if (r.top[k].id != w.at("id").to_number<int64_t>()) {
          EXPECT_NEAR(r.top[k].logprob, wl, 2e-3) << "order differs beyond a near-tie";
        }
        EXPECT_NEAR(r.top[k].logprob, wl, 2e-3);
      }
      batch_entry e{0, static_cast<int32_t>(hist.size()), r.id, true};
      hist.push_back(r.id);
      ASSERT_TRUE((*ctx)->decode({&e, 1}));
      last = 0;
    }
    (*ctx)->kv().seq_remove(0);
  }
}

// Quantised variants: greedy ids against llama.cpp's for the same file (exact where the
// reference's logit margin is comfortable), and the deviation of the logits from the F32 reference.
//
// The margin. Our kernels and llama.cpp's both quantise activations to 8 bits but differ in the
// details (llama.cpp stores each activation block scale as f16, we keep f32; the AMX prefill path
// uses BF16 activations instead; each variant sums in its own order), so near-ties can flip.
// Measured gaps at the first divergence from llama.cpp's ids on these prompts (2026-11-30):
//   Q8_0: AMX 0.061, AVX-512 VNNI 0.026, scalar 0.060;  Q4_0: AMX 0.052, VNNI 0.080, scalar 0.185.
// The old Q4_0 margin of 0.1 therefore failed on a scalar-only machine: it measured which summation
// order we use, not correctness. The margins below leave ~1.6x headroom over the worst variant and
// are still far below what a kernel bug does (the Q4_0 model's own logits are 0.70 from F32 on
// average, max 4.5; a wrong scale or offset moves logits by whole units). A systematic drift is
// caught separately: at least half of the prompts must reproduce llama.cpp's ids exactly (every
// variant gets 5-10 of 10).
struct quant_case {
  const char* file;
  const char* golden;
  double max_logit_dev;  // stated tolerance vs the F32 golden logits
  double margin;         // a divergence from llama.cpp's ids is allowed where our top-2 gap is below this
  const char* name;      // test name suffix
};

class golden_quant : public ::testing::TestWithParam<quant_case> {};

TEST_P(golden_quant, close_to_f32_and_llama_cpp) {
  const auto& qc = GetParam();
  auto m = load_or_null(qc.file);
  if (!m) GTEST_SKIP() << "missing " << qc.file;
  auto lines = read_jsonl(shared(std::string("golden/stories260K/quantized/") + qc.golden));
  ASSERT_FALSE(lines.empty());
  for (int threads : {1, 2}) {
    auto ctx = context::create(m, {threads, 512, 16});
    ASSERT_TRUE(ctx);
    int exact = 0, total = 0;
    double max_gap = 0;
    for (const auto& g : lines) {
      auto prompt = ids_of(g.at("prompt_ids"));
      auto want = ids_of(g.at("ids"));
      auto got = greedy(**ctx, 0, prompt, static_cast<int>(want.size()));
      (*ctx)->kv().seq_remove(0);
      ++total;
      if (got == want) {
        ++exact;
        continue;
      }
      // A divergence is acceptable only where our own top two candidates are nearly tied (the
      // reference records only its smallest margin, not the one at each step).
      size_t first = 0;
      while (first < got.size() && got[first] == want[first]) ++first;
      std::vector<int32_t> hist = prompt;
      hist.insert(hist.end(), want.begin(), want.begin() + static_cast<ptrdiff_t>(first));
      std::vector<batch_entry> b;
      for (size_t i = 0; i < hist.size(); ++i) b.push_back({0, static_cast<int32_t>(i), hist[i], i + 1 == hist.size()});
      ASSERT_TRUE((*ctx)->decode(b));
      auto l = (*ctx)->logits(hist.size() - 1);
      double gap = l[static_cast<size_t>(got[first])] - l[static_cast<size_t>(want[first])];
      (*ctx)->kv().seq_remove(0);
      EXPECT_LT(gap, qc.margin) << qc.file << " diverges at step " << first << " with our logit gap " << gap
                                << ", prompt: " << g.at("prompt").as_string();
      max_gap = std::max(max_gap, gap);
    }
    std::printf("[ golden   ] %s, %d thread(s), kernels %s: %d/%d prompts reproduce llama.cpp's greedy ids "
                "exactly; where not, our logit gap at the first divergence is <= %.4f (margin %.2f)\n",
                qc.file, threads, std::string(kernels_isa()).c_str(), exact, total, max_gap, qc.margin);
    EXPECT_GE(2 * exact, total) << qc.file << ": fewer than half of the prompts match llama.cpp exactly";
  }
  // Logit deviation from the F32 reference, one token per call.
  auto ref = read_jsonl(shared("golden/stories260K/logits.jsonl"));
  auto ctx = context::create(m, {1, 512, 16});
  ASSERT_TRUE(ctx);
  double worst = 0, sum = 0;
  size_t cnt = 0;
  for (const auto& g : ref) {
    auto toks = ids_of(g.at("tokens"));
    const auto& pos = g.at("positions").as_array();
    for (size_t i = 0; i < toks.size(); ++i) {
      batch_entry e{0, static_cast<int32_t>(i), toks[i], true};
      ASSERT_TRUE((*ctx)->decode({&e, 1}));
      auto l = (*ctx)->logits(0);
      const auto& want = pos[i].as_object().at("logits").as_array();
      for (size_t v = 0; v < want.size(); ++v) {
        double d = std::abs(want[v].to_number<double>() - l[v]);
        worst = std::max(worst, d);
        sum += d;
        ++cnt;
      }
    }
    (*ctx)->kv().seq_remove(0);
  }
  std::printf("[ golden   ] %s vs F32 llama.cpp logits: max |diff| = %.4f, mean |diff| = %.4f (tolerance %.2f)\n",
              qc.file, worst, sum / static_cast<double>(cnt), qc.max_logit_dev);
  EXPECT_LT(worst, qc.max_logit_dev);
}

INSTANTIATE_TEST_SUITE_P(stories260K, golden_quant,
                         ::testing::Values(quant_case{"stories260K-F16.gguf", "greedy-F16.jsonl", 0.05, 0.03, "F16"},
                                           quant_case{"stories260K-Q8_0.gguf", "greedy-Q8_0.jsonl", 0.6, 0.1, "Q8_0"},
                                           quant_case{"stories260K-Q4_0.gguf", "greedy-Q4_0.jsonl", 6.0, 0.3, "Q4_0"}),
                         [](const ::testing::TestParamInfo<quant_case>& i) { return std::string(i.param.name); });

}  // namespace
}  // namespace fp::engine
