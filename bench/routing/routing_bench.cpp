// Cost of one complexity-scorer decision (the target: <= 20 us for a 2,000-token prompt),
// with a peer measured in the same run: one pass of estimate_tokens over the same text (the
// cheapest thing any router must do: look at every byte once).
//   build/<dir>/bench/routing/routing_bench --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <string>

#include "routing/routing.hpp"

namespace {

using namespace fp::routing;

// ~2,000 tokens (about 8,000 bytes) of prose with a question at the end.
std::string long_prompt() {
  std::string s;
  const char* para =
      "Our support team closed more tickets this quarter, mainly because the new help-centre articles "
      "answered the most common billing questions before customers contacted us. However, the average "
      "first-response time rose from three hours to five, because two experienced agents left in August. ";
  while (fp::routing::estimate_tokens(s) < 1950) s += para;
  s += "\n\nExplain the main reasons for the change in response time and propose a staffing plan that "
       "must keep costs flat, then justify each step.";
  return s;
}

void BM_ScoreLongPrompt(benchmark::State& st) {
  complexity_scorer sc;
  std::string text = long_prompt();
  score_input in;
  in.text = text;
  double sum = 0;
  for (auto _ : st) {
    auto r = sc.score(in);
    sum += r.score;
    benchmark::DoNotOptimize(sum);
  }
  st.counters["tokens"] = static_cast<double>(estimate_tokens(text));
  st.counters["score"] = sc.score(in).score;
}
BENCHMARK(BM_ScoreLongPrompt);

// Worst case: one 2,000-token paragraph, all of it instruction (cue scan bounded to 4 KiB).
void BM_ScoreLongSingleParagraph(benchmark::State& st) {
  complexity_scorer sc;
  std::string text = long_prompt();
  for (auto& c : text)
    if (c == '\n') c = ' ';
  score_input in;
  in.text = text;
  for (auto _ : st) benchmark::DoNotOptimize(sc.score(in).score);
  st.counters["tokens"] = static_cast<double>(estimate_tokens(text));
}
BENCHMARK(BM_ScoreLongSingleParagraph);

void BM_TokenEstimateLongPrompt(benchmark::State& st) {  // the peer: one byte pass
  std::string text = long_prompt();
  int64_t sum = 0;
  for (auto _ : st) {
    sum += estimate_tokens(text);
    benchmark::DoNotOptimize(sum);
  }
}
BENCHMARK(BM_TokenEstimateLongPrompt);

void BM_ScoreShortQuery(benchmark::State& st) {
  complexity_scorer sc;
  score_input in;
  in.text = "What is the capital of Australia?";
  for (auto _ : st) benchmark::DoNotOptimize(sc.score(in).score);
}
BENCHMARK(BM_ScoreShortQuery);

void BM_ScoreCodeQuery(benchmark::State& st) {
  complexity_scorer sc;
  std::string q =
      "This C function should read all lines of a file into an array, but it crashes. Find all the bugs.\n\n"
      "```c\nchar **read_lines(FILE *f, size_t *count) {\n    char **lines = NULL;\n    size_t cap = 0, n = 0;\n"
      "    char buf[256];\n    while (fgets(buf, sizeof buf, f)) {\n        lines[n++] = buf;\n    }\n"
      "    *count = n;\n    return lines;\n}\n```";
  score_input in;
  in.text = q;
  for (auto _ : st) benchmark::DoNotOptimize(sc.score(in).score);
}
BENCHMARK(BM_ScoreCodeQuery);

}  // namespace

BENCHMARK_MAIN();
