// `fastpath bench` against `fastpath mock` over real sockets, and the percentile summary.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>

#include "loadgen/loadgen.hpp"
#include "test_http.hpp"

namespace {

std::string run_cmd(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

boost::json::object bench(int port, const std::string& args) {
  std::string cmd = std::string(FASTPATH_BINARY) + " bench --json --url http://127.0.0.1:" + std::to_string(port) +
                    "/v1 " + args;
  auto out = run_cmd(cmd);
  boost::system::error_code ec;
  auto v = boost::json::parse(out, ec);
  EXPECT_FALSE(ec) << cmd << " -> " << out;
  return ec ? boost::json::object{} : v.as_object();
}

}  // namespace

TEST(loadgen, summarize_nearest_rank) {
  std::vector<int64_t> v;
  for (int i = 100; i >= 1; --i) v.push_back(i * 1000);
  auto s = fp::loadgen::summarize_ns(v);
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(s.p50, 50);
  EXPECT_DOUBLE_EQ(s.p90, 90);
  EXPECT_DOUBLE_EQ(s.p99, 99);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 100);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  std::vector<int64_t> empty;
  EXPECT_EQ(fp::loadgen::summarize_ns(empty).count, 0u);
}

TEST(loadgen, rejects_bad_options) {
  fp::loadgen::options o;
  o.url = "https://example.invalid/v1";
  o.requests = 1;
  EXPECT_FALSE(fp::loadgen::run(o).has_value());
  o.url = "http://127.0.0.1:1/v1";
  o.requests = 0;
  EXPECT_FALSE(fp::loadgen::run(o).has_value());
}

TEST(bench_cli, streaming_closed_loop_counts_every_token) {
  fp::test::child_server srv({"mock", "--port", "0", "--profile", "zero"});
  ASSERT_GT(srv.port(), 0);
  auto r = bench(srv.port(), "--stream -c 4 -n 200");
  EXPECT_EQ(r["requests"].as_int64(), 200);
  EXPECT_EQ(r["errors"].as_int64(), 0);
  EXPECT_EQ(r["output_tokens"].as_int64(), 200 * 20);
  EXPECT_EQ(r["ttft_us"].at("count").to_number<int64_t>(), 200);
  EXPECT_EQ(r["itl_us"].at("count").to_number<int64_t>(), 200 * 19);
  EXPECT_GT(r["req_per_s"].as_double(), 0);
  auto stats = boost::json::parse(fp::test::request(srv.port(), "GET", "/mock/stats").body);
  EXPECT_EQ(stats.at("completed").as_int64(), 204);  // + 4 warm-up requests
}

TEST(bench_cli, non_streaming_and_open_loop_and_errors) {
  fp::test::child_server srv({"mock", "--port", "0", "--profile", "zero"});
  ASSERT_GT(srv.port(), 0);
  auto ns = bench(srv.port(), "-c 2 -n 50 --max-tokens 5");
  EXPECT_EQ(ns["requests"].as_int64(), 50);
  EXPECT_EQ(ns["output_tokens"].as_int64(), 250);
  auto ol = bench(srv.port(), "--rate 2000 -n 40 --stream");
  EXPECT_EQ(ol["requests"].as_int64(), 40);
  EXPECT_EQ(ol["errors"].as_int64(), 0);
  auto err = bench(srv.port(), "-c 1 -n 10 --warmup 0 -H 'x-mock-error-status: 503'");
  EXPECT_EQ(err["requests"].as_int64(), 0);
  EXPECT_EQ(err["errors"].as_int64(), 10);
  EXPECT_EQ(err["error_kinds"].at("http_503").as_int64(), 10);
  auto mid = bench(srv.port(), "-c 1 -n 5 --warmup 0 --stream -H 'x-mock-error-after: 3'");
  EXPECT_EQ(mid["errors"].as_int64(), 5);
}
