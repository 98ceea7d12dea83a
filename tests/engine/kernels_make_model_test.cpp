// make-model: the written file is a valid GGUF v3 with llama.cpp's names, shapes, types and
// metadata, the vocabulary copied, and weights that dequantise to the requested distribution.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "engine/make_model.hpp"
#include "gguf/gguf.hpp"

namespace fp::engine {
namespace {

const std::string k_vocab = std::string(FASTPATH_SHARED_DIR) + "/models/stories260K.gguf";

std::string temp_path(const char* tag) {
  return (std::filesystem::temp_directory_path() /
          ("fp_make_model_" + std::to_string(::getpid()) + "_" + tag + ".gguf"))
      .string();
}

struct temp_file {
  std::string path;
  ~temp_file() { std::remove(path.c_str()); }
};

TEST(KernelsMakeModel, WritesLlamaLayoutReadableByTheReader) {
  if (!std::filesystem::exists(k_vocab)) GTEST_SKIP() << "missing " << k_vocab;
  temp_file tf{temp_path("q4k")};
  make_model_options o;
  o.shape = *shape_preset("llama-1b");
  o.shape.n_embd = 256, o.shape.n_layer = 2, o.shape.n_head = 4, o.shape.n_head_kv = 2, o.shape.n_ff = 320;
  o.type = ggml_type::q4_k;
  o.output_type = ggml_type::q6_k;
  o.vocab_path = k_vocab;
  o.out_path = tf.path;
  auto r = make_model(o);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->n_vocab, 512);
  EXPECT_EQ(r->n_fallback_tensors, 2);  // ffn_down rows of 320: not a multiple of 256 -> Q8_0

  auto f = gguf::file::open(tf.path);
  ASSERT_TRUE(f) << f.error().message;
  const auto& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.bytes().size(), r->file_bytes);
  EXPECT_EQ(g.architecture(), "llama");
  EXPECT_EQ(*g.get_int("llama.embedding_length"), 256);
  EXPECT_EQ(*g.get_int("llama.block_count"), 2);
  EXPECT_EQ(*g.get_int("llama.feed_forward_length"), 320);
  EXPECT_EQ(*g.get_int("llama.attention.head_count"), 4);
  EXPECT_EQ(*g.get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(*g.get_int("llama.rope.dimension_count"), 64);
  EXPECT_EQ(*g.get_int("general.file_type"), 14);
  EXPECT_NEAR(*g.get_float("llama.rope.freq_base"), 500000.0, 1e-3);
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens")->size(), 512u);
  EXPECT_EQ(*g.get_string("tokenizer.ggml.model"), "llama");

  struct expect { const char* name; gguf::tensor_type type; uint64_t ne0, ne1; uint32_t n_dims; };
  const expect want[] = {
      {"token_embd.weight", gguf::tensor_type::q4_k, 256, 512, 2},
      {"blk.0.attn_norm.weight", gguf::tensor_type::f32, 256, 1, 1},
      {"blk.0.attn_q.weight", gguf::tensor_type::q4_k, 256, 256, 2},
      {"blk.0.attn_k.weight", gguf::tensor_type::q4_k, 256, 128, 2},
      {"blk.0.attn_v.weight", gguf::tensor_type::q4_k, 256, 128, 2},
      {"blk.1.attn_output.weight", gguf::tensor_type::q4_k, 256, 256, 2},
      {"blk.1.ffn_norm.weight", gguf::tensor_type::f32, 256, 1, 1},
      {"blk.1.ffn_gate.weight", gguf::tensor_type::q4_k, 256, 320, 2},
      {"blk.1.ffn_up.weight", gguf::tensor_type::q4_k, 256, 320, 2},
      {"blk.1.ffn_down.weight", gguf::tensor_type::q8_0, 320, 256, 2},
      {"output_norm.weight", gguf::tensor_type::f32, 256, 1, 1},
      {"output.weight", gguf::tensor_type::q6_k, 256, 512, 2},
  };
  EXPECT_EQ(g.tensors().size(), 1u + 2 * 9 + 2);
  for (const auto& w : want) {
    const auto* t = g.find_tensor(w.name);
    ASSERT_NE(t, nullptr) << w.name;
    EXPECT_EQ(t->type, w.type) << w.name;
    EXPECT_EQ(t->n_dims, w.n_dims) << w.name;
    EXPECT_EQ(t->dims[0], w.ne0) << w.name;
    EXPECT_EQ(t->dims[1], w.ne1) << w.name;
    EXPECT_EQ(t->offset % 32, 0u) << w.name;
  }
  // Weights dequantise to ~uniform(std 0.02); norms are ones.
  const auto* q = g.find_tensor("blk.0.attn_q.weight");
  std::vector<float> row(256);
  double ss = 0;
  for (uint64_t r = 0; r < 256; ++r) {
    dequantize_row(ggml_type::q4_k, q->data + r * q->row_bytes(), row.data(), 256);
    for (float v : row) {
      ASSERT_TRUE(std::isfinite(v));
      ss += v * v;
    }
  }
  EXPECT_NEAR(std::sqrt(ss / (256.0 * 256.0)), 0.02, 0.004);
  const auto* n = g.find_tensor("output_norm.weight");
  EXPECT_EQ(reinterpret_cast<const float*>(n->data)[17], 1.0f);
}

TEST(KernelsMakeModel, Stories260KShapeFallsBackWhereBlocksDoNotFit) {
  if (!std::filesystem::exists(k_vocab)) GTEST_SKIP() << "missing " << k_vocab;
  temp_file tf{temp_path("s260")};
  make_model_options o;
  o.shape = *shape_preset("stories260K");
  o.type = ggml_type::q4_0;
  o.vocab_path = k_vocab;
  o.out_path = tf.path;
  auto r = make_model(o);
  ASSERT_TRUE(r) << r.error().message;
  auto f = gguf::file::open(tf.path);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ((*f)->find_tensor("blk.0.ffn_down.weight")->type, gguf::tensor_type::f16);  // 172 cols
  EXPECT_EQ((*f)->find_tensor("blk.0.ffn_up.weight")->type, gguf::tensor_type::q4_0);
  ASSERT_NE((*f)->find_tensor("output.weight"), nullptr);  // untied, as the real stories260K
  EXPECT_EQ((*f)->tensors().size(), 48u);
}

TEST(KernelsMakeModel, ClearErrors) {
  make_model_options o;
  o.shape = *shape_preset("stories260K");
  o.vocab_path = "/nonexistent/vocab.gguf";
  o.out_path = temp_path("err");
  auto r = make_model(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/vocab.gguf"), std::string::npos);
  o.shape.n_head = 7;  // 64 % 7 != 0
  r = make_model(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("invalid shape"), std::string::npos);
  EXPECT_FALSE(shape_preset("no-such-model"));
}

}  // namespace
}  // namespace fp::engine
