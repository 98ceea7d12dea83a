// `fastpath generate --jsonl` reproduces the golden greedy file byte for byte in ids and text.
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

std::string shared(const std::string& rel) { return std::string(FASTPATH_SHARED_DIR) + "/" + rel; }

TEST(cli_generate, jsonl_matches_golden_greedy) {
  if (!std::filesystem::exists(FASTPATH_BINARY)) GTEST_SKIP() << "fastpath binary not built: " << FASTPATH_BINARY;
  auto model = shared("models/stories260K.gguf");
  auto golden = shared("golden/stories260K/greedy.jsonl");
  if (!std::filesystem::exists(model) || !std::filesystem::exists(golden)) GTEST_SKIP() << "missing shared data";
  for (int threads : {1, 2}) {
    std::string cmd = std::string(FASTPATH_BINARY) + " generate -m " + model + " --jsonl -t " +
                      std::to_string(threads) + " < " + golden;
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ASSERT_EQ(pclose(p), 0) << cmd;
    std::ifstream g(golden);
    std::istringstream o(out);
    std::string gl, ol;
    int lines = 0;
    while (std::getline(g, gl)) {
      ASSERT_TRUE(std::getline(o, ol)) << "missing output line " << lines;
      auto gv = boost::json::parse(gl).as_object();
      auto ov = boost::json::parse(ol).as_object();
      EXPECT_EQ(ov.at("prompt_ids"), gv.at("prompt_ids"));
      EXPECT_EQ(ov.at("ids"), gv.at("ids")) << gv.at("prompt");
      EXPECT_EQ(ov.at("text"), gv.at("text"));
      EXPECT_EQ(ov.at("stopped_eog"), gv.at("stopped_eog"));
      EXPECT_EQ(ov.at("min_logit_margin"), gv.at("min_logit_margin"));  // other fields kept
      ++lines;
    }
    EXPECT_EQ(lines, 10);
  }
}

TEST(cli_generate, errors_are_clear) {
  if (!std::filesystem::exists(FASTPATH_BINARY)) GTEST_SKIP() << "fastpath binary not built";
  std::string cmd = std::string(FASTPATH_BINARY) + " generate -m /nonexistent.gguf -p hi 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_NE(pclose(p), 0);
  EXPECT_NE(out.find("/nonexistent.gguf"), std::string::npos) << out;
}

}  // namespace
