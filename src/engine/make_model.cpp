// make-model: a streaming GGUF v3 writer (header and tensor table first, then each tensor's rows
// generated, quantised and written in turn, so a 7B file never sits in memory).
#include "engine/make_model.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "gguf/gguf.hpp"

namespace fp::engine {

namespace {

constexpr uint32_t k_alignment = 32;  // GGUF default (general.alignment not written)

// llama_ftype values for general.file_type.
uint32_t file_type_of(ggml_type t) {
  switch (t) {
    case ggml_type::f32: return 0;
    case ggml_type::f16: return 1;
    case ggml_type::q4_0: return 2;
    case ggml_type::q8_0: return 7;
    case ggml_type::q4_k: return 14;  // Q4_K_S: every matrix Q4_K
    case ggml_type::q5_k: return 16;  // Q5_K_S
    case ggml_type::q6_k: return 18;
    case ggml_type::bf16: return 32;
    default: return 0;
  }
}

// Serialises GGUF metadata values (little-endian, as every supported host is).
class kv_builder {
 public:
  template <class T>
  void put(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes_.insert(bytes_.end(), b, b + sizeof(T));
  }
  void put_str(std::string_view s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  void key(std::string_view k, gguf::value_type t) {
    ++count_;
    put_str(k);
    put<uint32_t>(static_cast<uint32_t>(t));
  }
  void add_u32(std::string_view k, uint32_t v) { key(k, gguf::value_type::u32), put(v); }
  void add_f32(std::string_view k, float v) { key(k, gguf::value_type::f32), put(v); }
  void add_string(std::string_view k, std::string_view v) { key(k, gguf::value_type::string), put_str(v); }
  void add_raw(std::string_view k, const gguf::value_view& v) {
    key(k, v.type());
    const auto r = v.raw();
    bytes_.insert(bytes_.end(), r.begin(), r.end());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t count_ = 0;
};

struct tensor_plan {
  std::string name;
  ggml_type type;
  int64_t cols;  // ne0
  int64_t rows;  // ne1 (1 for vectors)
  bool is_vector;
  bool norm;     // filled with ones instead of random values
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// splitmix64: fast, good enough for random weights.
struct rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // uniform in [-1, 1)
  float uniform() { return static_cast<float>(static_cast<int64_t>(next() >> 40) - (1 << 23)) * 0x1p-23f; }
};

struct file_closer {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};

}  // namespace

ggml_type fallback_type(ggml_type want, int64_t cols) noexcept {
  if (type_row_bytes(want, cols) > 0) return want;
  if (type_block_elems(want) > 32 && cols % 32 == 0) return ggml_type::q8_0;
  return ggml_type::f16;
}

std::optional<model_shape> shape_preset(std::string_view name) {
  model_shape s;
  s.name = std::string(name);
  if (name == "llama-1b" || name == "llama-3.2-1b") {
    s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192;
    s.n_ctx = 8192, s.rope_freq_base = 500000.0f;
    s.tied_output = name == "llama-3.2-1b";
  } else if (name == "tinyllama-1.1b") {
    s.n_embd = 2048, s.n_layer = 22, s.n_head = 32, s.n_head_kv = 4, s.n_ff = 5632, s.n_ctx = 2048;
  } else if (name == "llama-2-7b") {
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 32, s.n_ff = 11008, s.n_ctx = 4096;
  } else if (name == "mistral-7b") {
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 14336;
    s.n_ctx = 32768, s.rope_freq_base = 1000000.0f;
  } else if (name == "stories260K") {
    s.n_embd = 64, s.n_layer = 5, s.n_head = 8, s.n_head_kv = 4, s.n_ff = 172, s.n_ctx = 2048;
  } else {
    return std::nullopt;
  }
  return s;
}

std::vector<std::string_view> shape_preset_names() {
  return {"llama-1b", "llama-3.2-1b", "tinyllama-1.1b", "llama-2-7b", "mistral-7b", "stories260K"};
}

result<make_model_report> make_model(const make_model_options& o) {
  const auto& s = o.shape;
  if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0 ||
      s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0 || (s.n_embd / s.n_head) % 2 != 0)
    return make_error(errc::invalid_request,
                      fmt::format("make-model: invalid shape (dim {}, layers {}, heads {}/{}, ff {})", s.n_embd,
                                  s.n_layer, s.n_head, s.n_head_kv, s.n_ff));
  for (ggml_type t : {o.type, o.output_type.value_or(o.type), o.embd_type.value_or(o.type)})
    if (!type_supported(t))
      return make_error(errc::unsupported, fmt::format("make-model: type {} is not supported", type_name(t)));

  auto vf = gguf::file::open(o.vocab_path);
  if (!vf) return make_error(errc::io_error, fmt::format("make-model: vocabulary {}: {}", o.vocab_path, vf.error().message));
  const auto& voc = **vf;
  auto tokens = voc.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty())
    return make_error(errc::invalid_request,
                      fmt::format("make-model: {} has no tokenizer.ggml.tokens array", o.vocab_path));
  const auto n_vocab = static_cast<int64_t>(tokens->size());
  const int head_dim = s.n_embd / s.n_head;
  const int64_t kv_dim = static_cast<int64_t>(head_dim) * s.n_head_kv;

  // ---- metadata ----
  kv_builder kv;
  kv.add_string("general.architecture", "llama");
  kv.add_string("general.name", fmt::format("{} random {}", s.name, type_name(o.type)));
  kv.add_u32("general.file_type", file_type_of(o.type));
  kv.add_u32("general.quantization_version", 2);
  kv.add_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  kv.add_u32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
  kv.add_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
  kv.add_u32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  kv.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  kv.add_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
  kv.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  kv.add_f32("llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  kv.add_f32("llama.rope.freq_base", s.rope_freq_base);
  kv.add_u32("llama.vocab_size", static_cast<uint32_t>(n_vocab));
  for (const auto& m : voc.metadata())
    if (m.key.starts_with("tokenizer.")) kv.add_raw(m.key, m.value);

  // ---- tensor table (llama.cpp names; ggml order: ne0 = row length) ----
  std::vector<tensor_plan> plan;
  make_model_report rep;
  rep.n_vocab = static_cast<int>(n_vocab);
  auto add = [&](std::string name, ggml_type want, int64_t cols, int64_t rows, bool vec, bool norm) {
    const ggml_type t = vec ? ggml_type::f32 : fallback_type(want, cols);
    if (t != want && !vec) ++rep.n_fallback_tensors;
    plan.push_back({std::move(name), t, cols, rows, vec, norm});
    rep.n_params += static_cast<uint64_t>(cols * rows);
  };
  add("token_embd.weight", o.embd_type.value_or(o.type), s.n_embd, n_vocab, false, false);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    add(p + "attn_norm.weight", ggml_type::f32, s.n_embd, 1, true, true);
    add(p + "attn_q.weight", o.type, s.n_embd, s.n_embd, false, false);
    add(p + "attn_k.weight", o.type, s.n_embd, kv_dim, false, false);
    add(p + "attn_v.weight", o.type, s.n_embd, kv_dim, false, false);
    add(p + "attn_output.weight", o.type, s.n_embd, s.n_embd, false, false);
    add(p + "ffn_norm.weight", ggml_type::f32, s.n_embd, 1, true, true);
    add(p + "ffn_gate.weight", o.type, s.n_embd, s.n_ff, false, false);
    add(p + "ffn_up.weight", o.type, s.n_embd, s.n_ff, false, false);
    add(p + "ffn_down.weight", o.type, s.n_ff, s.n_embd, false, false);
  }
  add("output_norm.weight", ggml_type::f32, s.n_embd, 1, true, true);
  if (!s.tied_output) add("output.weight", o.output_type.value_or(o.type), s.n_embd, n_vocab, false, false);

  uint64_t off = 0;
  for (auto& t : plan) {
    off = align_up(off, k_alignment);
    t.offset = off;
    t.bytes = static_cast<uint64_t>(type_row_bytes(t.type, t.cols) * t.rows);
    off += t.bytes;
  }

  // ---- header ----
  kv_builder hdr;
  hdr.put<uint32_t>(0x46554747);  // "GGUF"
  hdr.put<uint32_t>(3);
  hdr.put<uint64_t>(plan.size());
  hdr.put<uint64_t>(kv.count());
  auto& hb = hdr.bytes();
  hb.insert(hb.end(), kv.bytes().begin(), kv.bytes().end());
  for (const auto& t : plan) {
    hdr.put_str(t.name);
    hdr.put<uint32_t>(t.is_vector ? 1 : 2);
    hdr.put<uint64_t>(static_cast<uint64_t>(t.cols));
    if (!t.is_vector) hdr.put<uint64_t>(static_cast<uint64_t>(t.rows));
    hdr.put<uint32_t>(static_cast<uint32_t>(t.type));
    hdr.put<uint64_t>(t.offset);
  }
  hb.resize(align_up(hb.size(), k_alignment), 0);

  std::unique_ptr<std::FILE, file_closer> f(std::fopen(o.out_path.c_str(), "wb"));
  if (!f) return make_error(errc::io_error, fmt::format("make-model: cannot create {}", o.out_path));
  std::vector<char> iobuf(1 << 22);
  std::setvbuf(f.get(), iobuf.data(), _IOFBF, iobuf.size());
  auto write = [&](const void* p, size_t n) { return std::fwrite(p, 1, n, f.get()) == n; };
  bool ok = write(hb.data(), hb.size());

  // ---- data ----
  rng g{o.seed * 0x2545f4914f6cdd1dull + 1};
  const float amp = o.weight_std * std::sqrt(3.0f);
  std::vector<float> row;
  std::vector<uint8_t> qrow;
  uint64_t pos = 0;
  const uint8_t zeros[k_alignment] = {};
  for (const auto& t : plan) {
    if (!ok) break;
    ok = write(zeros, static_cast<size_t>(t.offset - pos));
    pos = t.offset;
    row.resize(static_cast<size_t>(t.cols));
    qrow.resize(static_cast<size_t>(type_row_bytes(t.type, t.cols)));
    for (int64_t r = 0; r < t.rows && ok; ++r) {
      if (t.norm) {
        for (auto& v : row) v = 1.0f;
      } else {
        for (auto& v : row) v = amp * g.uniform();
      }
      quantize_row(t.type, row.data(), qrow.data(), t.cols);
      ok = write(qrow.data(), qrow.size());
    }
    pos += t.bytes;
  }
  if (ok) ok = std::fflush(f.get()) == 0;
  if (!ok) return make_error(errc::io_error, fmt::format("make-model: write to {} failed", o.out_path));
  rep.file_bytes = hb.size() + pos;
  return rep;
}

}  // namespace fp::engine
