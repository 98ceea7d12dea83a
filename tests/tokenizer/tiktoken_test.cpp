// tiktoken-compatible BPE against the official ids (../shared/tokenizers/testcases.jsonl) and the
// whole benchmark corpus (token count and sha256 of the id stream from BENCH.md).
#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using namespace fp::tokenizer;

namespace {

const std::string k_dir = std::string(FASTPATH_SHARED_DIR) + "/tokenizers";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

#define REQUIRE_SHARED(path)                                               \
  if (!fs::exists(path)) GTEST_SKIP() << "shared test data absent: " << (path)

std::shared_ptr<const tiktoken_encoding> enc(std::string_view name) {
  set_tiktoken_dir(k_dir);
  auto e = get_encoding(name);
  EXPECT_TRUE(e.has_value()) << (e ? "" : e.error().message);
  return e ? *e : nullptr;
}

std::string sha256_ids(const std::vector<token_id>& ids) {
  std::vector<unsigned char> le;
  le.reserve(ids.size() * 4);
  for (const auto id : ids) {
    const uint32_t v = static_cast<uint32_t>(id);
    for (int k = 0; k < 4; ++k) le.push_back(static_cast<unsigned char>(v >> (8 * k)));
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(le.data(), le.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

}  // namespace

TEST(Tiktoken, OfficialTestcases) {
  REQUIRE_SHARED(k_dir + "/testcases.jsonl");
  std::ifstream in(k_dir + "/testcases.jsonl");
  std::string line;
  int n = 0, failures = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto obj = boost::json::parse(line).as_object();
    const std::string text(obj.at("text").as_string());
    const auto e = enc(std::string(obj.at("encoding").as_string()));
    ASSERT_TRUE(e);
    std::vector<token_id> want;
    for (const auto& v : obj.at("ids").as_array()) want.push_back(static_cast<token_id>(v.as_int64()));
    std::vector<token_id> got;
    if (const auto* a = obj.if_contains("allowed_special")) {
      allowed_special allowed;
      if (a->is_string() && a->as_string() == "all") {
        allowed.all = true;
      } else {
        for (const auto& s : a->as_array()) allowed.names.emplace_back(s.as_string());
      }
      e->encode(text, allowed, got);
    } else {
      got = e->encode_ordinary(text);
      EXPECT_EQ(e->count(text), want.size());
    }
    if (got != want && ++failures < 20) {
      ADD_FAILURE() << obj.at("case").as_string() << " (" << e->name() << ") text: " << text.substr(0, 200);
    }
    auto back = e->decode(got);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, text) << obj.at("case").as_string();
    ++n;
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(n, 464);
}

TEST(Tiktoken, BenchCorpusWholeFile) {
  REQUIRE_SHARED(k_dir + "/bench-corpus.txt");
  const std::string text = read_file(k_dir + "/bench-corpus.txt");
  struct expect {
    const char* name;
    size_t tokens;
    const char* sha;
    std::vector<token_id> first;
  };
  const expect cases[] = {
      {"o200k_base", 2718932, "17085d1e8d341a0fab892bcccf8c62bfd640f1cebf8cc960590783287dc363ab",
       {3900, 118033, 1684, 13119, 53277, 12, 1190, 3906, 14, 1105}},
      {"cl100k_base", 2864248, "e15bab1b3f688bc7afe97f78acf87306e92145111622fc0db18750fce222ccae",
       {8318, 53099, 1129, 6034, 32294, 12, 3415, 2337, 14, 838}},
  };
  for (const auto& c : cases) {
    const auto e = enc(c.name);
    ASSERT_TRUE(e);
    const auto ids = e->encode_ordinary(text);
    EXPECT_EQ(ids.size(), c.tokens) << c.name;
    ASSERT_GE(ids.size(), 10u);
    EXPECT_EQ(std::vector<token_id>(ids.begin(), ids.begin() + 10), c.first) << c.name;
    EXPECT_EQ(sha256_ids(ids), c.sha) << c.name;
  }
}

TEST(Tiktoken, SpecialTokens) {
  REQUIRE_SHARED(k_dir + "/o200k_base.tiktoken");
  const auto e = enc("o200k_base");
  ASSERT_TRUE(e);
  const std::string text = "a<|endoftext|>b";
  const auto plain = e->encode_ordinary(text);
  EXPECT_GT(plain.size(), 3u);
  std::vector<token_id> with;
  e->encode(text, allowed_special{false, {"<|endoftext|>"}}, with);
  ASSERT_EQ(with.size(), 3u);
  EXPECT_EQ(with[1], 199999);
  std::vector<token_id> other;
  e->encode(text, allowed_special{false, {"<|endofprompt|>"}}, other);
  EXPECT_EQ(other, plain);
  EXPECT_EQ(e->find_special(text), std::optional<std::string_view>("<|endoftext|>"));
  EXPECT_EQ(e->n_vocab(), 200019u);
  EXPECT_FALSE(e->decode(std::vector<token_id>{199998}).has_value());
  EXPECT_EQ(*e->decode(std::vector<token_id>{199999}), "<|endoftext|>");
}

TEST(Tiktoken, InvalidUtf8IsReplacementChar) {
  REQUIRE_SHARED(k_dir + "/o200k_base.tiktoken");
  for (const char* name : {"o200k_base", "cl100k_base"}) {
    const auto e = enc(name);
    ASSERT_TRUE(e);
    // Each maximal invalid subpart becomes one U+FFFD.
    EXPECT_EQ(e->encode_ordinary("a\xff" "b"), e->encode_ordinary("a\xEF\xBF\xBD" "b"));
    EXPECT_EQ(e->encode_ordinary("x\xE2\x82" "y"), e->encode_ordinary("x\xEF\xBF\xBD" "y"));
    EXPECT_EQ(e->encode_ordinary("\xED\xA0\x80"),
              e->encode_ordinary("\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
    EXPECT_EQ(e->encode_ordinary("\xF0\x9F\x98"), e->encode_ordinary("\xEF\xBF\xBD"));
  }
}

TEST(Tiktoken, ModelTable) {
  EXPECT_EQ(encoding_name_for_model("gpt-4o"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("gpt-4o-mini-2024-07-18"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("o1"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("o3-mini"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("o4-mini"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("openai/gpt-4o"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("ft:gpt-4o-mini-2024-07-18:acme::abc"), "o200k_base");
  EXPECT_EQ(encoding_name_for_model("gpt-4"), "cl100k_base");
  EXPECT_EQ(encoding_name_for_model("gpt-4-0613"), "cl100k_base");
  EXPECT_EQ(encoding_name_for_model("gpt-3.5-turbo"), "cl100k_base");
  EXPECT_EQ(encoding_name_for_model("text-embedding-3-small"), "cl100k_base");
  EXPECT_FALSE(encoding_name_for_model("llama-3-8b").has_value());
  EXPECT_FALSE(get_encoding("p50k_base").has_value());
}

TEST(Tiktoken, LoadIsFastAndSharedAcrossThreads) {
  REQUIRE_SHARED(k_dir + "/o200k_base.tiktoken");
  // Load time is measured and reported (not asserted: no wall-clock asserts in tests).
  const auto t0 = std::chrono::steady_clock::now();
  auto fresh = tiktoken_encoding::load({"o200k_base", tiktoken_encoding::pattern::o200k, {}},
                                       k_dir + "/o200k_base.tiktoken");
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(fresh.has_value());
  RecordProperty("o200k_load_ms", std::to_string(ms));
  std::printf("o200k_base load: %.1f ms\n", ms);
  const auto e = enc("o200k_base");
  const std::string text = "Hello, world! Ünïcödé 中文 1234567 'll 😀";
  const auto want = e->encode_ordinary(text);
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (e->encode_ordinary(text) != want) ++bad;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Tiktoken, MalformedRankFile) {
  EXPECT_FALSE(tiktoken_encoding::from_rank_text({"x", tiktoken_encoding::pattern::o200k, {}}, "!!!! 0\n").has_value());
  EXPECT_FALSE(tiktoken_encoding::from_rank_text({"x", tiktoken_encoding::pattern::o200k, {}}, "").has_value());
  EXPECT_FALSE(tiktoken_encoding::from_rank_text({"x", tiktoken_encoding::pattern::o200k, {}}, "YQ== x\n").has_value());
  // Missing single bytes.
  EXPECT_FALSE(tiktoken_encoding::from_rank_text({"x", tiktoken_encoding::pattern::o200k, {}}, "YQ== 0\n").has_value());
}

TEST(Tiktoken, FreshEncodingsDoNotShareMemo) {
  // The per-thread merge memo is keyed by encoding identity, not address: an encoding built at the
  // address of a destroyed one must not see the other's results.
  REQUIRE_SHARED(k_dir + "/cl100k_base.tiktoken");
  const std::string text = "Tokenizers memoize merges: zyxwvut qwertyuiop asdfghjkl Ünïcödé ödön 中文字符";
  const auto ref_o = enc("o200k_base")->encode_ordinary(text);
  const auto ref_c = enc("cl100k_base")->encode_ordinary(text);
  for (int round = 0; round < 3; ++round) {
    for (const bool o200k : {true, false}) {
      auto e = tiktoken_encoding::load(
          {o200k ? "o200k_base" : "cl100k_base", o200k ? tiktoken_encoding::pattern::o200k : tiktoken_encoding::pattern::cl100k, {}},
          k_dir + (o200k ? "/o200k_base.tiktoken" : "/cl100k_base.tiktoken"));
      ASSERT_TRUE(e.has_value());
      EXPECT_EQ((*e)->encode_ordinary(text), o200k ? ref_o : ref_c);
    }
  }
}
