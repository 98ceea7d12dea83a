// `fastpath tokenize --jsonl` checks whole test files in one call: the official tiktoken cases and
// the stories260K golden tokenisation, through the real binary.
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

const std::string k_shared = FASTPATH_SHARED_DIR;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::vector<boost::json::object> lines_of(const std::string& s) {
  std::vector<boost::json::object> v;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t eol = s.find('\n', pos);
    if (eol == std::string::npos) eol = s.size();
    if (eol > pos) v.push_back(boost::json::parse(s.substr(pos, eol - pos)).as_object());
    pos = eol + 1;
  }
  return v;
}

}  // namespace

TEST(TokenizeCli, JsonlTiktokenCases) {
  if (!fs::exists(FASTPATH_BINARY)) GTEST_SKIP() << "fastpath binary not built: " << FASTPATH_BINARY;
  const std::string cases = k_shared + "/tokenizers/testcases.jsonl";
  if (!fs::exists(cases)) GTEST_SKIP() << "shared test data absent: " << cases;
  for (const std::string enc : {"o200k_base", "cl100k_base"}) {
    // The cases of one encoding, with the expected ids renamed so the binary's "ids" is its own.
    const std::string input = (fs::temp_directory_path() / ("fp_tok_cli_" + enc + ".jsonl")).string();
    std::vector<boost::json::array> want;
    {
      std::ifstream in(cases);
      std::ofstream out(input);
      std::string line;
      while (std::getline(in, line)) {
        auto o = boost::json::parse(line).as_object();
        if (o.at("encoding").as_string() != enc) continue;
        want.push_back(o.at("ids").as_array());
        o["expected"] = o.at("ids");
        o.erase("ids");
        out << boost::json::serialize(o) << '\n';
      }
    }
    const auto got = lines_of(run(std::string(FASTPATH_BINARY) + " tokenize --tiktoken-dir " + k_shared +
                                  "/tokenizers --encoding " + enc + " --jsonl < " + input));
    ASSERT_EQ(got.size(), want.size()) << enc;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].at("ids").as_array(), want[i]) << enc << " " << got[i].at("case").as_string();
    }
    fs::remove(input);
  }
}

TEST(TokenizeCli, JsonlGgufGolden) {
  if (!fs::exists(FASTPATH_BINARY)) GTEST_SKIP() << "fastpath binary not built: " << FASTPATH_BINARY;
  const std::string golden = k_shared + "/golden/stories260K/tokenize.jsonl";
  const std::string model = k_shared + "/models/stories260K.gguf";
  if (!fs::exists(golden) || !fs::exists(model)) GTEST_SKIP() << "shared test data absent: " << golden;
  std::vector<boost::json::object> want;
  {
    std::ifstream in(golden);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty()) want.push_back(boost::json::parse(line).as_object());
    }
  }
  const auto got = lines_of(run(std::string(FASTPATH_BINARY) + " tokenize --gguf " + model + " --jsonl < " + golden));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "line " << i + 1;
}

TEST(TokenizeCli, TextAndErrors) {
  if (!fs::exists(FASTPATH_BINARY)) GTEST_SKIP() << "fastpath binary not built: " << FASTPATH_BINARY;
  if (!fs::exists(k_shared + "/tokenizers/o200k_base.tiktoken")) GTEST_SKIP() << "shared test data absent";
  const auto out = lines_of(run(std::string(FASTPATH_BINARY) + " tokenize --tiktoken-dir " + k_shared +
                                "/tokenizers --model gpt-4o --text 'Hello world'"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].at("count").as_int64(), 2);
  EXPECT_EQ(out[0].at("tokenizer").as_string(), "o200k_base");
  EXPECT_TRUE(out[0].at("round_trip").as_bool());
  const int rc = std::system((std::string(FASTPATH_BINARY) + " tokenize --model no-such-model --text x 2>/dev/null").c_str());
  EXPECT_NE(rc, 0);
}
