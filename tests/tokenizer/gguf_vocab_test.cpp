// GGUF vocabularies against llama.cpp's tokenizer test vectors (../shared/tokenizers/llama-vocab)
// and the stories260K golden tokenisation (../shared/golden/stories260K/tokenize.jsonl).
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gguf/gguf.hpp"
#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace fp::tokenizer;

namespace {

const std::string k_vocab_dir = std::string(FASTPATH_SHARED_DIR) + "/tokenizers/llama-vocab";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_inputs(const std::string& data) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t at = data.find(sep, pos);
    if (at == std::string::npos) break;
    out.push_back(data.substr(pos, at - pos));
    pos = at + sep.size();
  }
  return out;
}

std::vector<std::vector<token_id>> read_outputs(const std::string& data) {
  std::vector<std::vector<token_id>> out;
  std::istringstream in(data);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<token_id> ids;
    std::istringstream ls(line);
    long v;
    while (ls >> v) ids.push_back(static_cast<token_id>(v));
    out.push_back(std::move(ids));
  }
  return out;
}

std::string show(const std::vector<token_id>& v) {
  std::string s;
  for (auto id : v) s += std::to_string(id) + " ";
  return s;
}

}  // namespace

class VocabFile : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabFile, MatchesLlamaCpp) {
  const std::string base = k_vocab_dir + "/ggml-vocab-" + GetParam() + ".gguf";
  if (!fs::exists(base) || !fs::exists(base + ".inp")) GTEST_SKIP() << "shared test data absent: " << base;
  auto vocab = gguf_vocab::load(base);
  ASSERT_TRUE(vocab.has_value()) << vocab.error().message;
  const auto inputs = split_inputs(slurp(base + ".inp"));
  const auto outputs = read_outputs(slurp(base + ".out"));
  ASSERT_EQ(inputs.size(), outputs.size());
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = (*vocab)->encode(inputs[i], false, false);
    if (got != outputs[i]) {
      ++failures;
      ADD_FAILURE() << GetParam() << " case " << i << " text [" << inputs[i] << "]\n  want " << show(outputs[i])
                    << "\n  got  " << show(got);
    }
    if ((*vocab)->type() != gguf_vocab::kind::wpm) {
      auto back = (*vocab)->decode(got);
      ASSERT_TRUE(back.has_value());
      EXPECT_EQ(*back, inputs[i]) << GetParam() << " round trip of case " << i;
    }
  }
  EXPECT_EQ(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(LlamaCpp, VocabFile,
                         ::testing::Values("llama-bpe", "qwen2", "llama-spm", "phi-3", "gpt-2", "starcoder",
                                           "falcon", "deepseek-llm", "deepseek-coder", "mpt", "refact",
                                           "bert-bge"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(GgufVocab, Stories260KGolden) {
  const std::string model = std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf";
  const std::string golden = std::string(FASTPATH_SHARED_DIR) + "/golden/stories260K/tokenize.jsonl";
  if (!fs::exists(model) || !fs::exists(golden)) GTEST_SKIP() << "shared test data absent: " << model;
  auto vocab = gguf_vocab::load(model);
  ASSERT_TRUE(vocab.has_value()) << vocab.error().message;
  const auto& v = **vocab;
  EXPECT_EQ(v.bos(), 1);
  EXPECT_EQ(v.eos(), 2);
  EXPECT_TRUE(v.add_bos());
  EXPECT_TRUE(v.is_control(1));
  EXPECT_TRUE(v.is_eog(2));
  EXPECT_FALSE(v.is_eog(300));
  std::ifstream in(golden);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto o = boost::json::parse(line).as_object();
    const std::string text(o.at("text").as_string());
    std::vector<token_id> want;
    for (const auto& x : o.at("ids").as_array()) want.push_back(static_cast<token_id>(x.as_int64()));
    const auto got = v.encode(text, o.at("add_bos").as_bool(), o.at("parse_special").as_bool());
    EXPECT_EQ(show(got), show(want)) << "text [" << text << "]";
    ++n;
  }
  EXPECT_EQ(n, 68);
  EXPECT_EQ(v.token_to_piece(1, false), "");
  EXPECT_EQ(v.token_to_piece(1, true), "<s>");
  EXPECT_EQ(v.token_to_piece(3 + 'A', false), "A");  // byte token <0x41>
}

TEST(GgufVocab, RejectsNonTokenizerFiles) {
  fp::gguf::writer w;
  w.add_string("general.architecture", "llama");
  auto img = w.finish();
  auto f = fp::gguf::file::from_buffer(img);
  ASSERT_TRUE(f.has_value());
  EXPECT_FALSE(gguf_vocab::from_gguf(**f).has_value());
  fp::gguf::writer w2;
  w2.add_string("tokenizer.ggml.model", "rwkv");
  w2.add_string_array("tokenizer.ggml.tokens", std::vector<std::string>{"a"});
  auto img2 = w2.finish();
  auto f2 = fp::gguf::file::from_buffer(img2);
  ASSERT_TRUE(f2.has_value());
  auto r = gguf_vocab::from_gguf(**f2);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, fp::errc::unsupported);
}
