// Public header of src/loadgen (fp_loadgen): the load generator behind `fastpath bench`.
// Drives any OpenAI-compatible endpoint over keep-alive HTTP/1.1 connections, closed loop
// (N concurrent) or open loop (Poisson arrivals), and reports TTFT, inter-token latency, time per
// output token and end-to-end latency.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/common.hpp"

namespace fp::loadgen {

struct options {
  std::string url = "http://127.0.0.1:8080/v1";  // base (…/v1) or full endpoint URL
  std::string model = "gpt-4o-mini";
  bool legacy_completions = false;  // POST /v1/completions with "prompt" instead of chat
  int concurrency = 1;              // closed loop: in-flight requests
  double rate = 0;                  // > 0: open loop, Poisson arrivals per second
  int64_t requests = 0;             // measured requests (0: until duration)
  double duration_s = 0;            // measured time limit (0: until requests)
  int64_t warmup = -1;              // requests before measuring (-1: = concurrency)
  bool stream = false;
  int64_t max_tokens = 0;           // 0: not sent
  std::string prompts_file;         // one prompt per line: text, or a JSON request object
  int prompt_words = 32;            // synthetic prompt length
  std::vector<std::pair<std::string, std::string>> headers;
  double timeout_s = 60;            // per request
  int threads = 1;                  // io threads (closed loop splits the concurrency)
  int max_connections = 4096;       // open loop bound
  bool extra_body_include_usage = true;  // stream_options.include_usage when streaming
};

struct stat {
  double mean = 0, p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0;  // microseconds
  size_t count = 0;
};

struct report {
  options opt;
  int64_t ok = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> error_kinds;  // "http_429", "timeout", "connect", "stream_error", ...
  double elapsed_s = 0;
  double req_per_s = 0;
  double output_tokens_per_s = 0;
  int64_t output_tokens = 0;
  stat ttft_us, itl_us, tpot_us, e2e_us;
};

// Runs the benchmark. Errors only for bad options (e.g. an unparsable URL); request failures are
// counted in the report.
result<report> run(const options& o);

std::string format_table(const report& r);
std::string format_json(const report& r);

// Nearest-rank percentile summary of samples (nanoseconds in, microseconds out). Sorts v.
stat summarize_ns(std::vector<int64_t>& v);

}  // namespace fp::loadgen
