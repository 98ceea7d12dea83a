#include "gguf/gguf.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>

namespace fp::gguf {
namespace {

std::vector<uint8_t> sample_file(uint32_t alignment = default_alignment) {
  writer w;
  w.set_alignment(alignment);
  w.add_string("general.architecture", "llama");
  w.add_u8("k.u8", 200);
  w.add_i8("k.i8", -5);
  w.add_u16("k.u16", 60000);
  w.add_i16("k.i16", -30000);
  w.add_u32("k.u32", 4000000000u);
  w.add_i32("k.i32", -2000000000);
  w.add_u64("k.u64", 1ull << 40);
  w.add_u64("k.u64big", ~0ull);
  w.add_i64("k.i64", -(1ll << 40));
  w.add_f32("k.f32", 1.5f);
  w.add_f64("k.f64", 2.25);
  w.add_bool("k.bool", true);
  std::vector<std::string> toks = {"<unk>", "<s>", "", "\xe2\x96\x81the"};
  w.add_string_array("tokenizer.ggml.tokens", toks);
  std::vector<float> scores = {0.f, -1.f, -2.5f, 3.f};
  w.add_f32_array("tokenizer.ggml.scores", scores);
  std::vector<int32_t> types = {2, 3, 1, 1};
  w.add_i32_array("tokenizer.ggml.token_type", types);
  std::vector<float> a(6 * 4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i);
  uint64_t dims_a[] = {6, 4};
  EXPECT_TRUE(w.add_tensor("a.weight", tensor_type::f32, dims_a,
                           {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4}));
  std::vector<uint8_t> q(2 * 34, 7);
  uint64_t dims_q[] = {64};
  EXPECT_TRUE(w.add_tensor("q.weight", tensor_type::q8_0, dims_q, q));
  return w.finish();
}

TEST(gguf, roundtrip_all_metadata_types) {
  auto img = sample_file();
  auto f = file::from_buffer(img);
  ASSERT_TRUE(f) << f.error().message;
  const file& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.architecture(), "llama");
  EXPECT_EQ(*g.get_int("k.u8"), 200);
  EXPECT_EQ(*g.get_int("k.i8"), -5);
  EXPECT_EQ(*g.get_int("k.u16"), 60000);
  EXPECT_EQ(*g.get_int("k.i16"), -30000);
  EXPECT_EQ(*g.get_int("k.u32"), 4000000000ll);
  EXPECT_EQ(*g.get_int("k.i32"), -2000000000);
  EXPECT_EQ(*g.get_int("k.u64"), 1ll << 40);
  EXPECT_FALSE(g.get_int("k.u64big"));
  EXPECT_EQ(*g.get_int("k.i64"), -(1ll << 40));
  EXPECT_FLOAT_EQ(*g.get_float("k.f32"), 1.5);
  EXPECT_DOUBLE_EQ(*g.get_float("k.f64"), 2.25);
  EXPECT_TRUE(*g.get_bool("k.bool"));
  EXPECT_EQ(*g.get_int_or("absent", 7), 7);
  EXPECT_FALSE(*g.get_bool_or("absent", false));
  auto missing = g.get_string("absent");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, errc::not_found);
  auto wrong = g.get_string("k.u8");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, errc::corrupt_data);
  EXPECT_NE(wrong.error().message.find("k.u8"), std::string::npos) << wrong.error().message;

  auto toks = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks);
  ASSERT_EQ(toks->size(), 4u);
  EXPECT_EQ((*toks)[1], "<s>");
  EXPECT_EQ((*toks)[2], "");
  EXPECT_EQ((*toks)[3], "\xe2\x96\x81the");
  auto scores = g.get_float_array("tokenizer.ggml.scores");
  ASSERT_TRUE(scores);
  EXPECT_EQ((*scores)[2], -2.5f);
  auto types = g.get_int_array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types);
  EXPECT_EQ((*types)[0], 2);
  EXPECT_FALSE(g.get_float_array("tokenizer.ggml.tokens"));
  EXPECT_FALSE(g.get_string_array("k.u8"));
  auto arr = g.get_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(arr);
  EXPECT_EQ(*arr->array_at(3).as_string(), "\xe2\x96\x81the");
  EXPECT_EQ(arr->array_at(9).type(), value_type::u8);  // out of range: empty view

  ASSERT_EQ(g.tensors().size(), 2u);
  auto* a = g.find_tensor("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, tensor_type::f32);
  EXPECT_EQ(a->n_dims, 2u);
  EXPECT_EQ(a->dims[0], 6u);
  EXPECT_EQ(a->dims[1], 4u);
  EXPECT_EQ(a->n_elements, 24u);
  EXPECT_EQ(a->size_bytes, 96u);
  EXPECT_EQ(a->rows(), 4u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->data) % 32, 0u);
  float x;
  std::memcpy(&x, a->data + 4 * 7, 4);
  EXPECT_EQ(x, 7.f);
  auto* q = g.find_tensor("q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->size_bytes, 68u);
  EXPECT_EQ(q->row_bytes(), 68u);
  EXPECT_EQ(q->data[0], 7);
  EXPECT_EQ(g.find_tensor("nope"), nullptr);
}

TEST(gguf, custom_alignment) {
  auto img = sample_file(64);
  auto f = file::from_buffer(img);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  EXPECT_EQ((*f)->find_tensor("q.weight")->offset % 64, 0u);
}

TEST(gguf, every_truncation_is_an_error_not_a_crash) {
  auto img = sample_file();
  for (size_t n = 0; n < img.size(); ++n) {
    auto f = file::from_buffer({img.data(), n});
    // Truncations inside the final padding leave every tensor intact; all others must fail.
    if (f) {
      EXPECT_GE(n, img.size() - 32) << n;
      continue;
    }
    EXPECT_FALSE(f.error().message.empty());
    EXPECT_EQ(f.error().code, errc::corrupt_data) << n << ": " << f.error().message;
  }
}

TEST(gguf, truncated_tensor_data_names_the_tensor) {
  auto img = sample_file();
  // q.weight is last: 68 bytes padded to 96, so cutting 40 bytes cuts into its data.
  auto f = file::from_buffer({img.data(), img.size() - 40});
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("q.weight"), std::string::npos) << f.error().message;
  EXPECT_NE(f.error().message.find("beyond the end"), std::string::npos) << f.error().message;
}

TEST(gguf, random_corruption_never_crashes) {
  auto img = sample_file();
  std::mt19937 rng(42);
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    auto c = img;
    int flips = 1 + int(rng() % 4);
    for (int k = 0; k < flips; ++k) c[rng() % c.size()] = uint8_t(rng());
    auto f = file::from_buffer(c, /*copy=*/false);
    if (!f) {
      ++bad;
      EXPECT_FALSE(f.error().message.empty());
      continue;
    }
    ++ok;
    // Exercise every getter on whatever survived.
    for (const auto& kv : (*f)->metadata()) {
      (void)(*f)->get_int(kv.key);
      (void)(*f)->get_float(kv.key);
      (void)(*f)->get_string(kv.key);
      (void)(*f)->get_string_array(kv.key);
      (void)(*f)->get_float_array(kv.key);
      (void)(*f)->get_int_array(kv.key);
    }
    for (const auto& t : (*f)->tensors()) {
      ASSERT_GE(t.data, c.data());
      ASSERT_LE(t.data + t.size_bytes, c.data() + c.size());
    }
  }
  EXPECT_GT(bad, 0);
  EXPECT_GT(ok, 0);
}

std::vector<uint8_t> header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  std::vector<uint8_t> v(24);
  std::memcpy(v.data(), "GGUF", 4);
  std::memcpy(v.data() + 4, &version, 4);
  std::memcpy(v.data() + 8, &n_tensors, 8);
  std::memcpy(v.data() + 16, &n_kv, 8);
  return v;
}
template <class T>
void append(std::vector<uint8_t>& v, T x) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  v.insert(v.end(), b, b + sizeof(T));
}
void append_str(std::vector<uint8_t>& v, std::string_view s) {
  append<uint64_t>(v, s.size());
  v.insert(v.end(), s.begin(), s.end());
}

TEST(gguf, hostile_headers) {
  auto expect_err = [](std::vector<uint8_t> img, std::string_view needle, errc code = errc::corrupt_data) {
    auto f = file::from_buffer(img);
    ASSERT_FALSE(f) << needle;
    EXPECT_EQ(f.error().code, code) << f.error().message;
    EXPECT_NE(f.error().message.find(needle), std::string::npos) << f.error().message;
  };
  expect_err({}, "too short");
  expect_err({'G', 'G', 'U', 'X', 3, 0, 0, 0}, "magic");
  expect_err(header(1, 0, 0), "version 1", errc::unsupported);
  expect_err(header(4, 0, 0), "version 4", errc::unsupported);
  expect_err(header(3, 0, ~0ull), "metadata count");
  expect_err(header(3, ~0ull, 0), "tensor count");
  {
    auto v = header(3, 0, 1);
    append<uint64_t>(v, ~0ull);  // key length
    v.resize(v.size() + 64);
    expect_err(v, "truncated key");
  }
  {
    auto v = header(3, 0, 1);
    append_str(v, "k");
    append<uint32_t>(v, 9);
    append<uint32_t>(v, 8);          // array of strings
    append<uint64_t>(v, 1ull << 60); // huge count
    v.resize(v.size() + 64);
    expect_err(v, "exceeds the file");
  }
  {
    auto v = header(3, 0, 1);
    append_str(v, "deep");
    for (int i = 0; i < 20; ++i) {
      append<uint32_t>(v, 9);
      if (i) append<uint64_t>(v, 1);
    }
    append<uint32_t>(v, 9);
    append<uint64_t>(v, 1);
    v.resize(v.size() + 64);
    expect_err(v, "");  // nested too deeply or truncated: just an error
  }
  {
    auto v = header(3, 0, 1);
    append_str(v, "k");
    append<uint32_t>(v, 77);
    append<uint32_t>(v, 0);
    expect_err(v, "unknown type 77");
  }
  {
    auto v = header(3, 0, 2);
    append_str(v, "k");
    append<uint32_t>(v, 4);
    append<uint32_t>(v, 1);
    append_str(v, "k");
    append<uint32_t>(v, 4);
    append<uint32_t>(v, 1);
    expect_err(v, "duplicate metadata key 'k'");
  }
  {
    auto v = header(3, 0, 1);
    append_str(v, "general.alignment");
    append<uint32_t>(v, 4);
    append<uint32_t>(v, 24);
    expect_err(v, "power of two");
  }
  auto tensor = [](uint32_t n_dims, std::vector<uint64_t> dims, uint32_t type, uint64_t off) {
    auto v = header(3, 1, 0);
    append_str(v, "t");
    append<uint32_t>(v, n_dims);
    for (auto d : dims) append<uint64_t>(v, d);
    append<uint32_t>(v, type);
    append<uint64_t>(v, off);
    v.resize(256, 0);
    return v;
  };
  expect_err(tensor(5, {1, 1, 1, 1, 1}, 0, 0), "dimensions");
  expect_err(tensor(2, {1ull << 40, 1ull << 40}, 0, 0), "overflows");
  expect_err(tensor(1, {16}, 2, 0), "block size");
  expect_err(tensor(1, {4}, 0, 3), "not aligned");
  expect_err(tensor(1, {4}, 99, 0), "unknown type 99", errc::unsupported);
  expect_err(tensor(1, {1000}, 0, 0), "beyond the end");
  expect_err(tensor(1, {4}, 0, 1ull << 63), "beyond the end");
  {
    auto ok = tensor(1, {4}, 0, 0);
    EXPECT_TRUE(file::from_buffer(ok));
  }
}

TEST(gguf, open_missing_file) {
  auto f = file::open("/nonexistent/x.gguf");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, errc::io_error);
  EXPECT_NE(f.error().message.find("/nonexistent/x.gguf"), std::string::npos);
}

TEST(gguf, writer_file_roundtrip) {
  auto path = std::filesystem::temp_directory_path() / ("fp_gguf_test_" + std::to_string(::getpid()) + ".gguf");
  writer w;
  w.add_string("general.architecture", "test");
  std::vector<uint16_t> h(64, 0x3c00);
  uint64_t dims[] = {64};
  ASSERT_TRUE(w.add_tensor("h", tensor_type::f16, dims, {reinterpret_cast<const uint8_t*>(h.data()), 128}));
  ASSERT_TRUE(w.write_file(path.string()));
  auto f = file::open(path.string());
  std::filesystem::remove(path);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ((*f)->architecture(), "test");
  EXPECT_EQ((*f)->find_tensor("h")->size_bytes, 128u);
  EXPECT_EQ((*f)->bytes().size(), w.finish().size());
}

TEST(gguf, stories260k) {
  std::string path = std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  auto f = file::open(path);
  ASSERT_TRUE(f) << f.error().message;
  const file& g = **f;
  EXPECT_EQ(g.architecture(), "llama");
  EXPECT_EQ(*g.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(*g.get_int("llama.block_count"), 5);
  auto toks = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks);
  ASSERT_EQ(toks->size(), 512u);
  EXPECT_EQ((*toks)[1], "<s>");
  EXPECT_EQ((*toks)[3], "<0x00>");
  auto scores = g.get_float_array("tokenizer.ggml.scores");
  ASSERT_TRUE(scores);
  EXPECT_EQ((*scores)[260], -1.f);
  auto* emb = g.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, tensor_type::f32);
  EXPECT_EQ(emb->dims[0], 64u);
  EXPECT_EQ(emb->dims[1], 512u);
  for (const char* q : {"stories260K-F16.gguf", "stories260K-Q8_0.gguf", "stories260K-Q4_0.gguf"}) {
    auto p = std::string(FASTPATH_SHARED_DIR) + "/models/" + q;
    if (!std::filesystem::exists(p)) continue;
    auto h = file::open(p);
    EXPECT_TRUE(h) << h.error().message;
  }
}

}  // namespace
}  // namespace fp::gguf
