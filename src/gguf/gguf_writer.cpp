// GGUF v3 writer: metadata is serialised as it is added, tensors are laid out at finish().
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "gguf/gguf.hpp"

namespace fp::gguf {

namespace {
template <class T>
void put(std::vector<uint8_t>& out, T v) {
  size_t n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
}  // namespace

void writer::key_header(std::string_view key, value_type t) {
  ++n_kv_;
  put_str(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(t));
}

void writer::add_u8(std::string_view k, uint8_t v) { key_header(k, value_type::u8); put(kv_bytes_, v); }
void writer::add_i8(std::string_view k, int8_t v) { key_header(k, value_type::i8); put(kv_bytes_, v); }
void writer::add_u16(std::string_view k, uint16_t v) { key_header(k, value_type::u16); put(kv_bytes_, v); }
void writer::add_i16(std::string_view k, int16_t v) { key_header(k, value_type::i16); put(kv_bytes_, v); }
void writer::add_u32(std::string_view k, uint32_t v) { key_header(k, value_type::u32); put(kv_bytes_, v); }
void writer::add_i32(std::string_view k, int32_t v) { key_header(k, value_type::i32); put(kv_bytes_, v); }
void writer::add_u64(std::string_view k, uint64_t v) { key_header(k, value_type::u64); put(kv_bytes_, v); }
void writer::add_i64(std::string_view k, int64_t v) { key_header(k, value_type::i64); put(kv_bytes_, v); }
void writer::add_f32(std::string_view k, float v) { key_header(k, value_type::f32); put(kv_bytes_, v); }
void writer::add_f64(std::string_view k, double v) { key_header(k, value_type::f64); put(kv_bytes_, v); }
void writer::add_bool(std::string_view k, bool v) {
  key_header(k, value_type::boolean);
  put<uint8_t>(kv_bytes_, v ? 1 : 0);
}
void writer::add_string(std::string_view k, std::string_view v) {
  key_header(k, value_type::string);
  put_str(kv_bytes_, v);
}
void writer::add_string_array(std::string_view k, std::span<const std::string_view> v) {
  key_header(k, value_type::array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(value_type::string));
  put<uint64_t>(kv_bytes_, v.size());
  for (auto s : v) put_str(kv_bytes_, s);
}
void writer::add_string_array(std::string_view k, const std::vector<std::string>& v) {
  key_header(k, value_type::array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(value_type::string));
  put<uint64_t>(kv_bytes_, v.size());
  for (const auto& s : v) put_str(kv_bytes_, s);
}
void writer::add_f32_array(std::string_view k, std::span<const float> v) {
  key_header(k, value_type::array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(value_type::f32));
  put<uint64_t>(kv_bytes_, v.size());
  for (float f : v) put(kv_bytes_, f);
}
void writer::add_i32_array(std::string_view k, std::span<const int32_t> v) {
  key_header(k, value_type::array);
  put<uint32_t>(kv_bytes_, static_cast<uint32_t>(value_type::i32));
  put<uint64_t>(kv_bytes_, v.size());
  for (int32_t x : v) put(kv_bytes_, x);
}
void writer::add_raw(std::string_view key, const value_view& v) {
  key_header(key, v.type());
  auto r = v.raw();
  kv_bytes_.insert(kv_bytes_.end(), r.begin(), r.end());
}

bool writer::add_tensor(std::string_view name, tensor_type type, std::span<const uint64_t> dims,
                        std::span<const uint8_t> data) {
  if (dims.empty() || dims.size() > max_dims) return false;
  uint64_t n = 1;
  for (auto d : dims) n *= d;
  auto* tr = tensor_type_info(type);
  if (!tr || dims[0] % tr->block_elems) return false;
  if (n / tr->block_elems * tr->block_bytes != data.size()) return false;
  tensors_.push_back({std::string(name), type, {dims.begin(), dims.end()}, {data.begin(), data.end()}});
  return true;
}

namespace {
// Header + metadata + tensor infos (padded), and each tensor's offset.
std::vector<uint8_t> build_header(uint64_t n_kv, const std::vector<uint8_t>& kv_bytes,
                                  uint32_t alignment, const auto& tensors) {
  std::vector<uint8_t> out;
  put<uint32_t>(out, 0x46554747);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors.size());
  put<uint64_t>(out, n_kv);
  out.insert(out.end(), kv_bytes.begin(), kv_bytes.end());
  uint64_t off = 0;
  for (const auto& t : tensors) {
    put_str(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (auto d : t.dims) put<uint64_t>(out, d);
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, off);
    off = align_up(off + t.data.size(), alignment);
  }
  out.resize(align_up(out.size(), alignment), 0);
  return out;
}
}  // namespace

std::vector<uint8_t> writer::finish() const {
  // A non-default alignment must be recorded in the file for readers to find it.
  std::vector<uint8_t> kv = kv_bytes_;
  uint64_t n_kv = n_kv_;
  if (alignment_ != default_alignment) {
    ++n_kv;
    put_str(kv, "general.alignment");
    put<uint32_t>(kv, static_cast<uint32_t>(value_type::u32));
    put<uint32_t>(kv, alignment_);
  }
  auto out = build_header(n_kv, kv, alignment_, tensors_);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(align_up(out.size(), alignment_), 0);
  }
  return out;
}

result<void> writer::write_file(const std::string& path) const {
  std::vector<uint8_t> kv = kv_bytes_;
  uint64_t n_kv = n_kv_;
  if (alignment_ != default_alignment) {
    ++n_kv;
    put_str(kv, "general.alignment");
    put<uint32_t>(kv, static_cast<uint32_t>(value_type::u32));
    put<uint32_t>(kv, alignment_);
  }
  auto header = build_header(n_kv, kv, alignment_, tensors_);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(errc::io_error, fmt::format("gguf: cannot create {}", path));
  bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size();
  static const uint8_t zeros[4096] = {};
  for (const auto& t : tensors_) {
    if (!ok) break;
    ok = std::fwrite(t.data.data(), 1, t.data.size(), f) == t.data.size();
    uint64_t pad = align_up(t.data.size(), alignment_) - t.data.size();
    while (ok && pad > 0) {
      uint64_t n = std::min<uint64_t>(pad, sizeof(zeros));
      ok = std::fwrite(zeros, 1, n, f) == n;
      pad -= n;
    }
  }
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return make_error(errc::io_error, fmt::format("gguf: write to {} failed", path));
  return {};
}

}  // namespace fp::gguf
