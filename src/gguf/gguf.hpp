// Public header of src/gguf (fp_gguf): a validating, memory-mapped reader of GGUF files
// (versions 2 and 3) and a small writer (tests, `make-model`).
//
// Everything is validated once in open(): every length, count, offset and size is checked against
// the file size, so a truncated or hostile file yields an fp::error naming the problem and the
// getters afterwards can never read out of bounds. Strings are views into the mapping: they live
// as long as the `file`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"

namespace fp::gguf {

// GGUF metadata value types (numbering from the GGUF spec).
enum class value_type : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view value_type_name(value_type t) noexcept;  // "u32", ..., "?" if unknown

// ggml tensor types (numbering from ggml.h). Only the ones with a known block layout are accepted
// by the reader; which ones the engine can compute with is the engine's business.
enum class tensor_type : uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30,
};
struct tensor_type_traits {
  std::string_view name;  // "F32", "Q4_K", ...
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block
};
// nullptr for a type without a known layout.
const tensor_type_traits* tensor_type_info(tensor_type t) noexcept;
std::string_view tensor_type_name(tensor_type t) noexcept;  // "?" if unknown
// Bytes of a row of `n_elems` elements; 0 if the type is unknown or n_elems is not a multiple
// of the block size.
uint64_t tensor_row_bytes(tensor_type t, uint64_t n_elems) noexcept;

inline constexpr uint32_t default_alignment = 32;
inline constexpr uint32_t max_dims = 4;

// A view of one metadata value inside the file (validated; cheap to copy).
class value_view {
 public:
  value_view() = default;
  value_view(value_type t, const uint8_t* p, uint64_t n) noexcept : type_(t), data_(p), size_(n) {}
  value_type type() const noexcept { return type_; }
  bool is_integer() const noexcept;
  bool is_float() const noexcept { return type_ == value_type::f32 || type_ == value_type::f64; }

  // Typed reads. Integers of any width convert to int64 (u64 above INT64_MAX is an error);
  // as_float accepts f32/f64 (and integers); as_bool accepts bool only.
  result<int64_t> as_int() const;
  result<double> as_float() const;
  result<bool> as_bool() const;
  result<std::string_view> as_string() const;

  // Arrays.
  bool is_array() const noexcept { return type_ == value_type::array; }
  value_type array_type() const noexcept;  // element type (only if is_array())
  uint64_t array_size() const noexcept;    // element count (only if is_array())
  // Element i (O(1) for fixed-size elements, O(i) for strings and nested arrays).
  value_view array_at(uint64_t i) const noexcept;

  std::span<const uint8_t> raw() const noexcept { return {data_, static_cast<size_t>(size_)}; }

 private:
  value_type type_ = value_type::u8;
  const uint8_t* data_ = nullptr;  // the value's bytes (for arrays: from the element type on)
  uint64_t size_ = 0;              // byte length of the encoded value
};

struct metadata_kv {
  std::string_view key;
  value_view value;
};

struct tensor_info {
  std::string_view name;
  tensor_type type = tensor_type::f32;
  uint32_t n_dims = 0;
  uint64_t dims[max_dims] = {1, 1, 1, 1};  // ggml order: dims[0] is the innermost (row length)
  uint64_t n_elements = 0;
  uint64_t offset = 0;       // in bytes, from the start of the data section
  uint64_t size_bytes = 0;   // bytes of data
  const uint8_t* data = nullptr;  // into the mapping; aligned to the file's alignment

  uint64_t rows() const noexcept { return dims[0] ? n_elements / dims[0] : 0; }
  uint64_t row_bytes() const noexcept { return tensor_row_bytes(type, dims[0]); }
};

class file {
 public:
  // Maps the file read-only and validates it. Errors: io_error (cannot open/map), corrupt_data
  // (malformed), unsupported (version, unknown tensor type).
  static result<std::shared_ptr<const file>> open(const std::string& path);
  // Parses an in-memory image. copy=true keeps a private copy; copy=false borrows `bytes`, which
  // must then outlive the file.
  static result<std::shared_ptr<const file>> from_buffer(std::span<const uint8_t> bytes,
                                                         bool copy = true);

  ~file();
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  uint32_t version() const noexcept { return version_; }
  uint32_t alignment() const noexcept { return alignment_; }
  uint64_t data_offset() const noexcept { return data_offset_; }  // start of the data section
  std::span<const uint8_t> bytes() const noexcept { return {base_, static_cast<size_t>(size_)}; }
  const std::string& path() const noexcept { return path_; }  // "" for buffers

  // ---- metadata ----
  std::span<const metadata_kv> metadata() const noexcept { return kvs_; }
  const metadata_kv* find(std::string_view key) const noexcept;  // nullptr if absent
  bool has(std::string_view key) const noexcept { return find(key) != nullptr; }

  // Typed getters: not_found if the key is absent, corrupt_data if it has another type.
  result<std::string_view> get_string(std::string_view key) const;
  result<int64_t> get_int(std::string_view key) const;  // any integer width
  result<double> get_float(std::string_view key) const;  // f32/f64 (integers are converted)
  result<bool> get_bool(std::string_view key) const;
  // Convenience: the value, or `def` if the key is absent (a wrong type is still an error).
  result<int64_t> get_int_or(std::string_view key, int64_t def) const;
  result<double> get_float_or(std::string_view key, double def) const;
  result<bool> get_bool_or(std::string_view key, bool def) const;

  // Arrays (not_found if absent, corrupt_data if not an array of the right kind).
  result<std::vector<std::string_view>> get_string_array(std::string_view key) const;
  result<std::vector<float>> get_float_array(std::string_view key) const;  // f32/f64 elements
  result<std::vector<int64_t>> get_int_array(std::string_view key) const;  // any int width
  result<value_view> get_array(std::string_view key) const;  // raw access (nested arrays)

  // `general.architecture` ("" if absent).
  std::string_view architecture() const noexcept;

  // ---- tensors ----
  std::span<const tensor_info> tensors() const noexcept { return tensors_; }
  const tensor_info* find_tensor(std::string_view name) const noexcept;  // nullptr if absent

 private:
  file() = default;
  result<void> parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  void* map_ = nullptr;  // mmap base (nullptr for buffers)
  struct free_deleter { void operator()(uint8_t* p) const noexcept; };
  std::unique_ptr<uint8_t, free_deleter> owned_;  // page-aligned copy (from_buffer)
  uint32_t version_ = 0;
  uint32_t alignment_ = default_alignment;
  uint64_t data_offset_ = 0;
  std::vector<metadata_kv> kvs_;  // in file order
  std::vector<tensor_info> tensors_;  // in file order
  std::vector<uint32_t> kv_index_;  // indices into kvs_, sorted by key
  std::vector<uint32_t> tensor_index_;  // indices into tensors_, sorted by name
};

// ---- writer -------------------------------------------------------------------------------------
// Builds a GGUF v3 image in memory (tests, fuzz seeds, `fastpath make-model`).
class writer {
 public:
  void set_alignment(uint32_t a) { alignment_ = a; }
  void add_u8(std::string_view key, uint8_t v);
  void add_i8(std::string_view key, int8_t v);
  void add_u16(std::string_view key, uint16_t v);
  void add_i16(std::string_view key, int16_t v);
  void add_u32(std::string_view key, uint32_t v);
  void add_i32(std::string_view key, int32_t v);
  void add_u64(std::string_view key, uint64_t v);
  void add_i64(std::string_view key, int64_t v);
  void add_f32(std::string_view key, float v);
  void add_f64(std::string_view key, double v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, std::span<const std::string_view> v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_f32_array(std::string_view key, std::span<const float> v);
  void add_i32_array(std::string_view key, std::span<const int32_t> v);
  // Copies every key/value of `src` (e.g. a vocabulary) except keys for which skip(key) is true.
  template <class Skip>
  void copy_metadata(const file& src, Skip skip) {
    for (const auto& kv : src.metadata())
      if (!skip(kv.key)) add_raw(kv.key, kv.value);
  }
  void add_raw(std::string_view key, const value_view& v);

  // dims in ggml order (dims[0] = row length). `data` must hold exactly the tensor's bytes; it is
  // copied. Returns false if the shape is invalid for the type or the size does not match.
  bool add_tensor(std::string_view name, tensor_type type, std::span<const uint64_t> dims,
                  std::span<const uint8_t> data);

  std::vector<uint8_t> finish() const;                 // the complete file image
  result<void> write_file(const std::string& path) const;

 private:
  void key_header(std::string_view key, value_type t);
  struct pending_tensor {
    std::string name;
    tensor_type type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> data;
  };
  uint32_t alignment_ = default_alignment;
  uint64_t n_kv_ = 0;
  std::vector<uint8_t> kv_bytes_;
  std::vector<pending_tensor> tensors_;
};

}  // namespace fp::gguf
