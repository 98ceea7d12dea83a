// engine_bench: the physical limit and the kernels, measured in one run.
//
//   engine_bench bandwidth [-t THREADS] [--mib N]       STREAM-like read-and-sum (AVX2) over N MiB
//   engine_bench matmul [-t THREADS] [--type Q4_0] [--dim 2048 --ff 8192 --kv 512 --layers 16
//                       --vocab 32000] [--prompt 512] [--reps 5]
//       the matrix products of one forward pass of a llama-shaped model (random weights): decode
//       (1 token) and prefill (--prompt tokens), reported with the bandwidth measured just before.
//   engine_bench kernel ...     one matrix, single thread, CPU time (usable on a loaded machine)
//   engine_bench model -m FILE [-t N] [--prompt 512] [--gen 128] [--reps 3]
//       the whole forward pass: prompt processing and generation tok/s, bandwidth in the same run.
//
// Every figure is the median of --reps runs with min/max; each run's result is checked
// (finite outputs) so the work cannot be optimised away.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "engine/kernels.hpp"
#include "engine/model.hpp"
#include "engine/threadpool.hpp"
#include "gguf/gguf.hpp"

namespace {

using namespace fp::engine;
using clk = std::chrono::steady_clock;

struct stats {
  double median, min, max;
};
stats summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

// ---- bandwidth ------------------------------------------------------------------------------------
#if defined(__x86_64__)
__attribute__((target("avx2"))) uint64_t read_sum_avx2(const uint64_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  const auto* v = reinterpret_cast<const __m256i*>(p);
  const size_t nv = n / 4;
  for (size_t i = 0; i + 4 <= nv; i += 4) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(v + i));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(v + i + 1));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(v + i + 2));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(v + i + 3));
  }
  alignas(32) uint64_t out[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return out[0] + out[1] + out[2] + out[3];
}
#endif
uint64_t read_sum_scalar(const uint64_t* p, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
  return s0 + s1 + s2 + s3;
}
uint64_t read_sum(const uint64_t* p, size_t n) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) return read_sum_avx2(p, n);
#endif
  return read_sum_scalar(p, n);
}

// GB/s of a parallel read of `mib` MiB, median of reps (buffer touched first).
stats measure_bandwidth(thread_pool& pool, size_t mib, int reps) {
  const size_t bytes = mib << 20;
  const size_t n = bytes / 8;
  auto* buf = static_cast<uint64_t*>(std::aligned_alloc(64, bytes));
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  const uint64_t expect = static_cast<uint64_t>(n) * (n - 1) / 2;
  std::vector<double> gbs;
  for (int r = 0; r < reps; ++r) {
    std::vector<uint64_t> part(static_cast<size_t>(pool.size()));
    const auto t0 = clk::now();
    pool.run([&](int i, int nt) {
      const size_t chunk = (n / static_cast<size_t>(nt)) / 64 * 64;
      const size_t b = chunk * static_cast<size_t>(i);
      const size_t e = i == nt - 1 ? n : b + chunk;
      part[static_cast<size_t>(i)] = read_sum(buf + b, e - b);
    });
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    uint64_t total = 0;
    for (auto v : part) total += v;
    if (total != expect) fmt::print(stderr, "bandwidth: checksum mismatch\n");
    gbs.push_back(static_cast<double>(bytes) / s / 1e9);
  }
  std::free(buf);
  return summarize(gbs);
}

// ---- matmul ---------------------------------------------------------------------------------------
struct args {
  std::string mode, model;
  int gen = 128;
  int batch = 256;
  int threads = 2;
  size_t mib = 1024;
  ggml_type type = ggml_type::q4_0;
  int dim = 2048, ff = 8192, kv = 512, layers = 16, vocab = 32000, prompt = 512, reps = 5;
};

bool parse_type(const std::string& s, ggml_type& t) {
  for (ggml_type c : {ggml_type::f32, ggml_type::f16, ggml_type::bf16, ggml_type::q4_0, ggml_type::q8_0,
                      ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k})
    if (type_name(c) == s) {
      t = c;
      return true;
    }
  return false;
}

struct matrix {
  weight_view w;
  std::vector<uint8_t> storage;
};

// One random matrix of each shape, copied into every layer (distinct memory, same bytes).
matrix make_random(ggml_type t, int64_t rows, int64_t cols, uint32_t seed) {
  matrix m;
  const int64_t rb = type_row_bytes(t, cols);
  m.storage.resize(static_cast<size_t>(rb * rows));
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> row(static_cast<size_t>(cols));
  const int64_t distinct = std::min<int64_t>(rows, 64);
  for (int64_t r = 0; r < distinct; ++r) {
    for (auto& v : row) v = dist(rng);
    quantize_row(t, row.data(), m.storage.data() + r * rb, cols);
  }
  for (int64_t r = distinct; r < rows; ++r)
    std::memcpy(m.storage.data() + r * rb, m.storage.data() + (r % distinct) * rb, static_cast<size_t>(rb));
  m.w = {t, rows, cols, m.storage.data(), 0};
  return m;
}

int run_matmul(const args& a) {
  thread_pool pool(a.threads);
  fmt::print("kernels: {}, threads: {}, type: {}\n", kernels_isa(), a.threads, type_name(a.type));
  fmt::print("shape: dim {} ff {} kv {} layers {} vocab {}\n", a.dim, a.ff, a.kv, a.layers, a.vocab);
  std::vector<std::vector<matrix>> layers(static_cast<size_t>(a.layers));
  uint64_t weight_bytes = 0;
  for (int l = 0; l < a.layers; ++l) {
    auto& L = layers[static_cast<size_t>(l)];
    L.push_back(make_random(a.type, a.dim, a.dim, 1));  // wq
    L.push_back(make_random(a.type, a.kv, a.dim, 2));   // wk
    L.push_back(make_random(a.type, a.kv, a.dim, 3));   // wv
    L.push_back(make_random(a.type, a.dim, a.dim, 4));  // wo
    L.push_back(make_random(a.type, a.ff, a.dim, 5));   // gate
    L.push_back(make_random(a.type, a.ff, a.dim, 6));   // up
    L.push_back(make_random(a.type, a.dim, a.ff, 7));   // down
    for (auto& m : L) weight_bytes += m.storage.size();
  }
  auto out = make_random(a.type, a.vocab, a.dim, 8);
  weight_bytes += out.storage.size();
  fmt::print("weights: {:.3f} GB\n", static_cast<double>(weight_bytes) / 1e9);

  const int64_t maxw = std::max<int64_t>(a.ff, a.vocab);
  std::vector<float> x(static_cast<size_t>(a.prompt) * static_cast<size_t>(a.ff));
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  std::vector<float> y(static_cast<size_t>(a.prompt) * static_cast<size_t>(std::max<int64_t>(a.ff, a.dim)));
  std::vector<float> logits(static_cast<size_t>(maxw));

  // One pass over every matrix for n tokens (logits only for the last token, as in generation).
  auto pass = [&](int n) {
    for (auto& L : layers)
      for (auto& m : L) matmul(m.w, x.data(), m.w.cols, y.data(), m.w.rows, n, pool);
    matmul(out.w, x.data(), out.w.cols, logits.data(), out.w.rows, 1, pool);
    for (int64_t i = 0; i < a.dim; ++i)
      if (!std::isfinite(y[static_cast<size_t>(i)])) return false;
    return std::isfinite(logits[0]);
  };

  const auto bw = measure_bandwidth(pool, a.mib, a.reps);
  fmt::print("bandwidth ({} threads, {} MiB read): {:.1f} GB/s (min {:.1f}, max {:.1f})\n", a.threads, a.mib,
             bw.median, bw.min, bw.max);

  pass(1);  // warm-up
  std::vector<double> dec;
  for (int r = 0; r < a.reps * 4; ++r) {
    const auto t0 = clk::now();
    if (!pass(1)) fmt::print(stderr, "non-finite output\n");
    dec.push_back(std::chrono::duration<double>(clk::now() - t0).count());
  }
  const auto d = summarize(dec);
  const double limit = bw.median * 1e9 / static_cast<double>(weight_bytes);
  fmt::print("decode (matmul only): {:.1f} tok/s (min {:.1f}, max {:.1f}); {:.1f} GB/s of weights; "
             "{:.0f}% of the bandwidth limit {:.1f} tok/s\n",
             1.0 / d.median, 1.0 / d.max, 1.0 / d.min, static_cast<double>(weight_bytes) / d.median / 1e9,
             100.0 / d.median / limit, limit);

  std::vector<double> pre;
  pass(a.prompt);
  for (int r = 0; r < std::max(2, a.reps / 2); ++r) {
    const auto t0 = clk::now();
    if (!pass(a.prompt)) fmt::print(stderr, "non-finite output\n");
    pre.push_back(std::chrono::duration<double>(clk::now() - t0).count());
  }
  const auto p = summarize(pre);
  const double macs = static_cast<double>(weight_bytes > 0 ? 1 : 0) *
                      (static_cast<double>(a.layers) * (2.0 * a.dim * a.dim + 2.0 * a.kv * a.dim + 3.0 * a.ff * a.dim)) *
                      a.prompt;
  fmt::print("prefill {} tokens (matmul only): {:.1f} tok/s (min {:.1f}, max {:.1f}); {:.1f} GMAC/s\n",
             a.prompt, a.prompt / p.median, a.prompt / p.max, a.prompt / p.min, macs / p.median / 1e9);
  return 0;
}

// Single-thread kernel throughput in CPU time (meaningful on a loaded machine): one matrix of
// rows x cols, n tokens, reported as GMAC/s per core and, for n = 1, bytes of weights per second.
int run_kernel(const args& a) {
  thread_pool pool(1);
  auto m = make_random(a.type, a.ff, a.dim, 1);
  std::vector<float> x(static_cast<size_t>(a.prompt) * static_cast<size_t>(a.dim), 0.5f);
  std::vector<float> y(static_cast<size_t>(a.prompt) * static_cast<size_t>(a.ff));
  for (int n : {1, a.prompt}) {
    matmul(m.w, x.data(), y.data(), n, pool);
    std::vector<double> v;
    for (int r = 0; r < a.reps; ++r) {
      timespec t0{}, t1{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
      const int iters = n == 1 ? 50 : 1;
      for (int i = 0; i < iters; ++i) matmul(m.w, x.data(), y.data(), n, pool);
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
      v.push_back(((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9) / iters);
    }
    const auto s = summarize(v);
    const double macs = static_cast<double>(a.ff) * a.dim * n;
    fmt::print("{} {}x{} n={}: {:.1f} GMAC/s/core (cpu time; min {:.1f} max {:.1f}); {:.1f} GB/s of weights\n",
               type_name(a.type), a.ff, a.dim, n, macs / s.median / 1e9, macs / s.max / 1e9, macs / s.min / 1e9,
               static_cast<double>(m.storage.size()) / s.median / 1e9);
  }
  return 0;
}


// Whole-model speed through the engine's forward pass (fp::engine::context), the way llama-bench
// measures it: prompt processing = one batch of --prompt tokens; generation = --gen single-token
// decode steps after a one-token prompt. Bandwidth is measured in the same run, and generation is
// compared with the bandwidth limit: bytes of weights read per token / bandwidth.
int run_model(const args& a) {
  auto m = model::load(a.model);
  if (!m) {
    fmt::print(stderr, "engine_bench: {}\n", m.error().message);
    return 1;
  }
  const auto& mdl = **m;
  // Bytes read per generated token: every matrix once, plus one embedding row.
  uint64_t per_token = 0;
  bool has_output = false;
  for (const auto& t : mdl.file().tensors()) {
    if (t.name == "output.weight") has_output = true;
    if (t.name != "token_embd.weight") per_token += t.size_bytes;
  }
  if (!has_output) per_token += mdl.file().find_tensor("token_embd.weight")->size_bytes;
  fmt::print("model: {} ({}), kernels: {}, threads: {}\n", a.model, mdl.describe(), kernels_isa(), a.threads);
  fmt::print("weight bytes read per generated token: {:.3f} GB\n", static_cast<double>(per_token) / 1e9);

  context_params cp;
  cp.n_threads = a.threads;
  cp.kv_tokens = a.prompt + a.gen + 64;
  auto ctx = context::create(*m, cp);
  if (!ctx) {
    fmt::print(stderr, "engine_bench: {}\n", ctx.error().message);
    return 1;
  }
  auto& c = **ctx;
  const int n_vocab = mdl.hp().n_vocab;
  std::vector<batch_entry> batch;
  // Process CPU time of the last run_prompt / run_gen, divided by the thread count: what the run
  // would take with the cores to itself (spinning counts, so this is conservative).
  double cpu_s = 0;
  context::phase_times pp_phase, tg_phase;  // of the last full prompt / generation
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
  };
  auto run_prompt = [&](int n) {
    batch.clear();
    for (int i = 0; i < n; ++i) batch.push_back({0, i, (i * 7919 + 13) % n_vocab, i + 1 == n});
    const double c0 = cpu_now();
    c.reset_times();
    const auto t0 = clk::now();
    auto r = c.decode(batch);
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    if (n == a.prompt) pp_phase = c.times();
    cpu_s = (cpu_now() - c0) / a.threads;
    if (!r) fmt::print(stderr, "decode: {}\n", r.error().message);
    else if (!std::isfinite(c.logits(batch.size() - 1)[0])) fmt::print(stderr, "non-finite logits\n");
    return s;
  };
  auto run_gen = [&](int n) {
    run_prompt(1);
    c.reset_times();
    const double c0 = cpu_now();
    const auto t0 = clk::now();
    for (int i = 1; i <= n; ++i) {
      const batch_entry e{0, i, (i * 31 + 5) % n_vocab, true};
      if (!c.decode({&e, 1})) fmt::print(stderr, "decode failed\n");
    }
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    cpu_s = (cpu_now() - c0) / a.threads;
    tg_phase = c.times();
    if (!std::isfinite(c.logits(0)[0])) fmt::print(stderr, "non-finite logits\n");
    return s;
  };

  run_prompt(8);  // fault the mapping in, size the scratch
  c.kv().seq_remove(0);
  thread_pool bw_pool(a.threads);
  std::vector<double> bw, pp, tg, pp_cpu, tg_cpu;
  for (int r = 0; r < a.reps; ++r) {  // interleaved, so load changes hit all three alike
    // three reads of one buffer: the first after allocating is often slower on this VM
    bw.push_back(measure_bandwidth(bw_pool, a.mib, 3).median);
    pp.push_back(a.prompt / run_prompt(a.prompt));
    pp_cpu.push_back(a.prompt / cpu_s);
    c.kv().seq_remove(0);
    tg.push_back(a.gen / run_gen(a.gen));
    tg_cpu.push_back(a.gen / cpu_s);
    c.kv().seq_remove(0);
  }
  const auto pc = summarize(pp_cpu), tc = summarize(tg_cpu);
  const auto b = summarize(bw), p = summarize(pp), g = summarize(tg);
  const double limit = b.median * 1e9 / static_cast<double>(per_token);
  fmt::print("bandwidth: {:.1f} GB/s (min {:.1f}, max {:.1f})\n", b.median, b.min, b.max);
  fmt::print("prompt {} tokens: {:.1f} tok/s (min {:.1f}, max {:.1f})\n", a.prompt, p.median, p.min, p.max);
  fmt::print("generate {} tokens: {:.2f} tok/s (min {:.2f}, max {:.2f}); bandwidth limit {:.2f} tok/s; {:.0f}% of it\n",
             a.gen, g.median, g.min, g.max, limit, 100.0 * g.median / limit);
  fmt::print("against the best bandwidth of the run ({:.1f} GB/s): {:.0f}%\n", b.max,
             100.0 * g.median / (b.max * 1e9 / static_cast<double>(per_token)));
  fmt::print("CPU-time equivalent (process CPU time / threads): prompt {:.1f} tok/s, generate {:.2f} tok/s\n",
             pc.median, tc.median);
  fmt::print("last prompt by phase (wall): matmul {:.0f}%, attention {:.0f}%, other {:.0f}% of {:.3f} s\n",
             100 * pp_phase.matmul / pp_phase.total, 100 * pp_phase.attention / pp_phase.total,
             100 * (pp_phase.total - pp_phase.matmul - pp_phase.attention) / pp_phase.total, pp_phase.total);
  fmt::print("last generation by phase (wall): matmul {:.0f}%, attention {:.0f}%, other {:.0f}% of {:.3f} s\n",
             100 * tg_phase.matmul / tg_phase.total, 100 * tg_phase.attention / tg_phase.total,
             100 * (tg_phase.total - tg_phase.matmul - tg_phase.attention) / tg_phase.total, tg_phase.total);
  return 0;
}

// kB value of a /proc/self/status line ("VmHWM", "VmRSS"), or -1.
long status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') v = std::atol(line + n + 1);
  std::fclose(f);
  return v;
}

// Peak memory of one generation, the way `fastpath generate` runs it (prompt in batches of
// --batch tokens, then --gen single-token steps), against the formula file + KV + constant.
// No bandwidth buffer in this mode: it would be the peak.
int run_memory(const args& a) {
  const long base_kb = status_kb("VmRSS");
  auto m = model::load(a.model);
  if (!m) {
    fmt::print(stderr, "engine_bench: {}\n", m.error().message);
    return 1;
  }
  context_params cp;
  cp.n_threads = a.threads;
  cp.kv_tokens = a.prompt + a.gen;
  auto ctx = context::create(*m, cp);
  if (!ctx) return 1;
  auto& c = **ctx;
  const int n_vocab = (*m)->hp().n_vocab;
  std::vector<batch_entry> batch;
  for (int p0 = 0; p0 < a.prompt; p0 += a.batch) {
    batch.clear();
    const int n = std::min(a.batch, a.prompt - p0);
    for (int i = 0; i < n; ++i) batch.push_back({0, p0 + i, ((p0 + i) * 7919 + 13) % n_vocab, p0 + i + 1 == a.prompt});
    if (!c.decode(batch)) return 1;
  }
  const double after_prompt = static_cast<double>(status_kb("VmHWM"));
  for (int i = 0; i < a.gen; ++i) {
    const batch_entry e{0, a.prompt + i, (i * 31 + 5) % n_vocab, true};
    if (!c.decode({&e, 1})) return 1;
  }
  const double mib = 1024.0 * 1024.0;
  const double peak = static_cast<double>(status_kb("VmHWM")) * 1024.0;
  const double file = static_cast<double>((*m)->file().bytes().size());
  const double kv_cap = static_cast<double>(c.kv().bytes_total());
  const double kv_used = static_cast<double>(c.kv().block_bytes()) *
                         static_cast<double>(c.kv().blocks_total() - c.kv().blocks_free());
  const double bound = static_cast<double>(context::scratch_bound((*m)->hp(), a.threads, cp.kv_tokens, a.batch, 1));
  const double base = static_cast<double>(base_kb) * 1024.0;
  fmt::print("model: {} ({}), kernels: {}, threads: {}, prompt {} in batches of {}, gen {}\n", a.model,
             (*m)->describe(), kernels_isa(), a.threads, a.prompt, a.batch, a.gen);
  fmt::print("peak RSS {:.1f} MiB = file {:.1f} + KV used {:.1f} (capacity {:.1f}) + rest {:.1f} MiB\n", peak / mib,
             file / mib, kv_used / mib, kv_cap / mib, (peak - file - kv_used) / mib);
  fmt::print("peak after the prompt {:.1f} MiB; now: RssAnon {:.1f} MiB (heap: KV, scratch), RssFile {:.1f} MiB "
             "(mapped pages actually read + binary)\n",
             after_prompt / 1024.0, static_cast<double>(status_kb("RssAnon")) / 1024.0,
             static_cast<double>(status_kb("RssFile")) / 1024.0);
  fmt::print("rest = process baseline before loading {:.1f} MiB + {:.1f} MiB; scratch bound (formula) {:.1f} MiB\n",
             base / mib, (peak - file - kv_used - base) / mib, bound / mib);
  return 0;
}

int usage() {
  fmt::print(stderr,
             "usage: engine_bench bandwidth [-t N] [--mib N] [--reps N]\n"
             "       engine_bench matmul [-t N] [--type Q4_0|Q4_K|Q8_0|F16|...] [--dim N --ff N --kv N\n"
             "                           --layers N --vocab N] [--prompt N] [--reps N] [--mib N]\n"
             "       engine_bench kernel [--type T] [--dim N --ff N] [--prompt N] [--reps N]\n"
             "       engine_bench model -m FILE [-t N] [--prompt 512] [--gen 128] [--reps 3] [--mib 1024]\n"
             "       engine_bench memory -m FILE [-t N] [--prompt 512] [--batch 256] [--gen 128]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  args a;
  a.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string v = argv[++i];
    if (k == "-t" || k == "--threads") a.threads = std::atoi(v.c_str());
    else if (k == "--mib") a.mib = static_cast<size_t>(std::atol(v.c_str()));
    else if (k == "--type") {
      if (!parse_type(v, a.type)) return usage();
    } else if (k == "--dim") a.dim = std::atoi(v.c_str());
    else if (k == "--ff") a.ff = std::atoi(v.c_str());
    else if (k == "--kv") a.kv = std::atoi(v.c_str());
    else if (k == "--layers") a.layers = std::atoi(v.c_str());
    else if (k == "--vocab") a.vocab = std::atoi(v.c_str());
    else if (k == "--prompt") a.prompt = std::atoi(v.c_str());
    else if (k == "--reps") a.reps = std::max(1, std::atoi(v.c_str()));
    else if (k == "-m" || k == "--model") a.model = v;
    else if (k == "--gen") a.gen = std::atoi(v.c_str());
    else if (k == "--batch") a.batch = std::max(1, std::atoi(v.c_str()));
    else return usage();
  }
  if (a.mode == "bandwidth") {
    thread_pool pool(a.threads);
    const auto bw = measure_bandwidth(pool, a.mib, a.reps);
    fmt::print("bandwidth ({} threads, {} MiB read): {:.1f} GB/s (min {:.1f}, max {:.1f})\n", a.threads, a.mib,
               bw.median, bw.min, bw.max);
    return 0;
  }
  if (a.mode == "matmul") return run_matmul(a);
  if (a.mode == "kernel") return run_kernel(a);
  if (a.mode == "model") return run_model(a);
  if (a.mode == "memory") return run_memory(a);
  return usage();
}
