// GGUF reader: parse and validate once, then hand out views.
#include "gguf/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace fp::gguf {

namespace {

constexpr uint32_t gguf_magic = 0x46554747;  // "GGUF" little-endian
constexpr int max_array_depth = 8;

const tensor_type_traits traits_f32{"F32", 1, 4};
const tensor_type_traits traits_f16{"F16", 1, 2};
const tensor_type_traits traits_q4_0{"Q4_0", 32, 18};
const tensor_type_traits traits_q4_1{"Q4_1", 32, 20};
const tensor_type_traits traits_q5_0{"Q5_0", 32, 22};
const tensor_type_traits traits_q5_1{"Q5_1", 32, 24};
const tensor_type_traits traits_q8_0{"Q8_0", 32, 34};
const tensor_type_traits traits_q8_1{"Q8_1", 32, 36};
const tensor_type_traits traits_q2_k{"Q2_K", 256, 84};
const tensor_type_traits traits_q3_k{"Q3_K", 256, 110};
const tensor_type_traits traits_q4_k{"Q4_K", 256, 144};
const tensor_type_traits traits_q5_k{"Q5_K", 256, 176};
const tensor_type_traits traits_q6_k{"Q6_K", 256, 210};
const tensor_type_traits traits_q8_k{"Q8_K", 256, 292};
const tensor_type_traits traits_i8{"I8", 1, 1};
const tensor_type_traits traits_i16{"I16", 1, 2};
const tensor_type_traits traits_i32{"I32", 1, 4};
const tensor_type_traits traits_i64{"I64", 1, 8};
const tensor_type_traits traits_f64{"F64", 1, 8};
const tensor_type_traits traits_bf16{"BF16", 1, 2};

// Fixed byte size of a scalar value type; 0 for string/array/unknown.
uint64_t scalar_size(value_type t) noexcept {
  switch (t) {
    case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
    case value_type::u16: case value_type::i16: return 2;
    case value_type::u32: case value_type::i32: case value_type::f32: return 4;
    case value_type::u64: case value_type::i64: case value_type::f64: return 8;
    default: return 0;
  }
}

bool known_value_type(uint32_t t) noexcept { return t <= 12; }

template <class T>
T load(const uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

error corrupt(std::string msg) { return make_error(errc::corrupt_data, "gguf: " + std::move(msg)); }

// Bounds-checked cursor over the file image.
struct cursor {
  const uint8_t* base;
  uint64_t size;
  uint64_t pos = 0;

  uint64_t left() const noexcept { return size - pos; }
  bool need(uint64_t n) const noexcept { return n <= left(); }

  template <class T>
  bool read(T& out) noexcept {
    if (!need(sizeof(T))) return false;
    out = load<T>(base + pos);
    pos += sizeof(T);
    return true;
  }
  bool read_string(std::string_view& out) noexcept {
    uint64_t n = 0;
    if (!read(n) || !need(n)) return false;
    out = std::string_view(reinterpret_cast<const char*>(base + pos), static_cast<size_t>(n));
    pos += n;
    return true;
  }
};

// Skips (and validates) one value of type t at the cursor. Returns an error message or "".
std::string skip_value(cursor& c, value_type t, int depth) {
  if (uint64_t s = scalar_size(t)) {
    if (!c.need(s)) return "truncated value";
    if (t == value_type::boolean && c.base[c.pos] > 1) return "bool value is not 0 or 1";
    c.pos += s;
    return {};
  }
  if (t == value_type::string) {
    std::string_view s;
    if (!c.read_string(s)) return "string length exceeds the file";
    return {};
  }
  if (t == value_type::array) {
    if (depth >= max_array_depth) return "arrays nested too deeply";
    uint32_t et = 0;
    uint64_t n = 0;
    if (!c.read(et) || !c.read(n)) return "truncated array header";
    if (!known_value_type(et)) return fmt::format("unknown array element type {}", et);
    auto elem = static_cast<value_type>(et);
    if (uint64_t s = scalar_size(elem)) {
      if (n > c.left() / s) return fmt::format("array of {} elements exceeds the file", n);
      if (elem == value_type::boolean) {
        for (uint64_t i = 0; i < n; ++i)
          if (c.base[c.pos + i] > 1) return "bool value is not 0 or 1";
      }
      c.pos += n * s;
      return {};
    }
    // Variable-size elements: each takes at least 8 bytes (a length or an array header).
    if (n > c.left() / 8) return fmt::format("array of {} elements exceeds the file", n);
    for (uint64_t i = 0; i < n; ++i) {
      auto e = skip_value(c, elem, depth + 1);
      if (!e.empty()) return e;
    }
    return {};
  }
  return fmt::format("unknown value type {}", static_cast<uint32_t>(t));
}

bool mul_overflow(uint64_t a, uint64_t b, uint64_t& out) noexcept {
  return __builtin_mul_overflow(a, b, &out);
}

}  // namespace

std::string_view value_type_name(value_type t) noexcept {
  switch (t) {
    case value_type::u8: return "u8";
    case value_type::i8: return "i8";
    case value_type::u16: return "u16";
    case value_type::i16: return "i16";
    case value_type::u32: return "u32";
    case value_type::i32: return "i32";
    case value_type::f32: return "f32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::u64: return "u64";
    case value_type::i64: return "i64";
    case value_type::f64: return "f64";
  }
  return "?";
}

const tensor_type_traits* tensor_type_info(tensor_type t) noexcept {
  switch (t) {
    case tensor_type::f32: return &traits_f32;
    case tensor_type::f16: return &traits_f16;
    case tensor_type::q4_0: return &traits_q4_0;
    case tensor_type::q4_1: return &traits_q4_1;
    case tensor_type::q5_0: return &traits_q5_0;
    case tensor_type::q5_1: return &traits_q5_1;
    case tensor_type::q8_0: return &traits_q8_0;
    case tensor_type::q8_1: return &traits_q8_1;
    case tensor_type::q2_k: return &traits_q2_k;
    case tensor_type::q3_k: return &traits_q3_k;
    case tensor_type::q4_k: return &traits_q4_k;
    case tensor_type::q5_k: return &traits_q5_k;
    case tensor_type::q6_k: return &traits_q6_k;
    case tensor_type::q8_k: return &traits_q8_k;
    case tensor_type::i8: return &traits_i8;
    case tensor_type::i16: return &traits_i16;
    case tensor_type::i32: return &traits_i32;
    case tensor_type::i64: return &traits_i64;
    case tensor_type::f64: return &traits_f64;
    case tensor_type::bf16: return &traits_bf16;
  }
  return nullptr;
}

std::string_view tensor_type_name(tensor_type t) noexcept {
  auto* tr = tensor_type_info(t);
  return tr ? tr->name : std::string_view("?");
}

uint64_t tensor_row_bytes(tensor_type t, uint64_t n_elems) noexcept {
  auto* tr = tensor_type_info(t);
  if (!tr || n_elems % tr->block_elems) return 0;
  return n_elems / tr->block_elems * tr->block_bytes;
}

// ---- value_view ---------------------------------------------------------------------------------

bool value_view::is_integer() const noexcept {
  switch (type_) {
    case value_type::u8: case value_type::i8: case value_type::u16: case value_type::i16:
    case value_type::u32: case value_type::i32: case value_type::u64: case value_type::i64:
      return true;
    default: return false;
  }
}

result<int64_t> value_view::as_int() const {
  switch (type_) {
    case value_type::u8: return int64_t{load<uint8_t>(data_)};
    case value_type::i8: return int64_t{load<int8_t>(data_)};
    case value_type::u16: return int64_t{load<uint16_t>(data_)};
    case value_type::i16: return int64_t{load<int16_t>(data_)};
    case value_type::u32: return int64_t{load<uint32_t>(data_)};
    case value_type::i32: return int64_t{load<int32_t>(data_)};
    case value_type::i64: return load<int64_t>(data_);
    case value_type::u64: {
      uint64_t v = load<uint64_t>(data_);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return corrupt(fmt::format("u64 value {} does not fit an int64", v));
      return static_cast<int64_t>(v);
    }
    default:
      return corrupt(fmt::format("expected an integer, found {}", value_type_name(type_)));
  }
}

result<double> value_view::as_float() const {
  if (type_ == value_type::f32) return double{load<float>(data_)};
  if (type_ == value_type::f64) return load<double>(data_);
  if (is_integer()) {
    auto v = as_int();
    if (!v) return v.error();
    return static_cast<double>(*v);
  }
  return corrupt(fmt::format("expected a float, found {}", value_type_name(type_)));
}

result<bool> value_view::as_bool() const {
  if (type_ != value_type::boolean)
    return corrupt(fmt::format("expected a bool, found {}", value_type_name(type_)));
  return data_[0] != 0;
}

result<std::string_view> value_view::as_string() const {
  if (type_ != value_type::string)
    return corrupt(fmt::format("expected a string, found {}", value_type_name(type_)));
  uint64_t n = load<uint64_t>(data_);
  return std::string_view(reinterpret_cast<const char*>(data_ + 8), static_cast<size_t>(n));
}

value_type value_view::array_type() const noexcept {
  return static_cast<value_type>(load<uint32_t>(data_));
}
uint64_t value_view::array_size() const noexcept { return load<uint64_t>(data_ + 4); }

value_view value_view::array_at(uint64_t i) const noexcept {
  if (!is_array() || i >= array_size()) return {};
  value_type et = array_type();
  const uint8_t* p = data_ + 12;
  const uint8_t* end = data_ + size_;
  if (uint64_t s = scalar_size(et)) return value_view(et, p + i * s, s);
  // Variable-size elements were validated in open(): walk them.
  cursor c{p, static_cast<uint64_t>(end - p)};
  for (uint64_t k = 0; k < i; ++k) skip_value(c, et, 1);
  uint64_t start = c.pos;
  skip_value(c, et, 1);
  return value_view(et, p + start, c.pos - start);
}

// ---- file ---------------------------------------------------------------------------------------

void file::free_deleter::operator()(uint8_t* p) const noexcept { std::free(p); }

file::~file() {
  if (map_) ::munmap(map_, static_cast<size_t>(size_));
}

result<std::shared_ptr<const file>> file::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(errc::io_error, fmt::format("gguf: cannot open {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return make_error(errc::io_error, fmt::format("gguf: cannot stat {}: {}", path, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(errc::io_error, fmt::format("gguf: {} is not a regular file", path));
  }
  std::shared_ptr<file> f(new file());
  f->path_ = path;
  f->size_ = static_cast<uint64_t>(st.st_size);
  if (f->size_ > 0) {
    void* m = ::mmap(nullptr, static_cast<size_t>(f->size_), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return make_error(errc::io_error, fmt::format("gguf: cannot map {}: {}", path, std::strerror(e)));
    }
    f->map_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  auto r = f->parse();
  if (!r) {
    auto e = r.error();
    e.message += fmt::format(" (in {})", path);
    return e;
  }
  return std::shared_ptr<const file>(std::move(f));
}

result<std::shared_ptr<const file>> file::from_buffer(std::span<const uint8_t> bytes, bool copy) {
  std::shared_ptr<file> f(new file());
  if (copy) {
    // Page-aligned, so tensor data keeps the alignment the file promises.
    size_t n = (bytes.size() + 4095) / 4096 * 4096;
    f->owned_.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, n ? n : 4096)));
    if (!f->owned_) return make_error(errc::internal, "gguf: out of memory copying the buffer");
    if (!bytes.empty()) std::memcpy(f->owned_.get(), bytes.data(), bytes.size());
    f->base_ = f->owned_.get();
  } else {
    f->base_ = bytes.data();
  }
  f->size_ = bytes.size();
  auto r = f->parse();
  if (!r) return r.error();
  return std::shared_ptr<const file>(std::move(f));
}

result<void> file::parse() {
  cursor c{base_, size_};
  uint32_t magic = 0;
  if (!c.read(magic)) return corrupt("file too short for the GGUF magic");
  if (magic != gguf_magic) return corrupt("bad magic (not a GGUF file)");
  if (!c.read(version_)) return corrupt("truncated header (version)");
  if (version_ != 2 && version_ != 3)
    return make_error(errc::unsupported, fmt::format("gguf: unsupported version {} (need 2 or 3)", version_));
  uint64_t n_tensors = 0, n_kv = 0;
  if (!c.read(n_tensors)) return corrupt("truncated header (tensor count)");
  if (!c.read(n_kv)) return corrupt("truncated header (metadata count)");
  // Each kv takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at least
  // 8 + 4 + 8 + 4 + 8. Bounding the counts first keeps reservations proportional to the file.
  if (n_kv > c.left() / 13) return corrupt(fmt::format("metadata count {} exceeds the file", n_kv));
  if (n_tensors > c.left() / 32) return corrupt(fmt::format("tensor count {} exceeds the file", n_tensors));

  kvs_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    metadata_kv kv;
    if (!c.read_string(kv.key)) return corrupt(fmt::format("metadata #{}: truncated key", i));
    uint32_t t = 0;
    if (!c.read(t)) return corrupt(fmt::format("metadata '{}': truncated type", kv.key));
    if (!known_value_type(t)) return corrupt(fmt::format("metadata '{}': unknown type {}", kv.key, t));
    uint64_t start = c.pos;
    auto err = skip_value(c, static_cast<value_type>(t), 0);
    if (!err.empty()) return corrupt(fmt::format("metadata '{}': {}", kv.key, err));
    kv.value = value_view(static_cast<value_type>(t), base_ + start, c.pos - start);
    kvs_.push_back(kv);
  }
  kv_index_.resize(kvs_.size());
  for (uint32_t i = 0; i < kv_index_.size(); ++i) kv_index_[i] = i;
  std::sort(kv_index_.begin(), kv_index_.end(),
            [&](uint32_t a, uint32_t b) { return kvs_[a].key < kvs_[b].key; });
  for (size_t i = 1; i < kv_index_.size(); ++i)
    if (kvs_[kv_index_[i]].key == kvs_[kv_index_[i - 1]].key)
      return corrupt(fmt::format("duplicate metadata key '{}'", kvs_[kv_index_[i]].key));

  if (auto* a = find("general.alignment")) {
    if (a->value.type() != value_type::u32)
      return corrupt("general.alignment is not a u32");
    uint32_t al = load<uint32_t>(a->value.raw().data());
    if (al == 0 || (al & (al - 1)) != 0 || al > (1u << 20))
      return corrupt(fmt::format("general.alignment {} is not a power of two up to 1 MiB", al));
    alignment_ = al;
  }

  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    tensor_info ti;
    if (!c.read_string(ti.name)) return corrupt(fmt::format("tensor #{}: truncated name", i));
    if (!c.read(ti.n_dims)) return corrupt(fmt::format("tensor '{}': truncated dims", ti.name));
    if (ti.n_dims > max_dims)
      return corrupt(fmt::format("tensor '{}': {} dimensions (max {})", ti.name, ti.n_dims, max_dims));
    for (uint32_t d = 0; d < ti.n_dims; ++d)
      if (!c.read(ti.dims[d])) return corrupt(fmt::format("tensor '{}': truncated dims", ti.name));
    uint32_t t = 0;
    if (!c.read(t)) return corrupt(fmt::format("tensor '{}': truncated type", ti.name));
    ti.type = static_cast<tensor_type>(t);
    auto* tr = tensor_type_info(ti.type);
    if (!tr)
      return make_error(errc::unsupported, fmt::format("gguf: tensor '{}': unknown type {}", ti.name, t));
    if (!c.read(ti.offset)) return corrupt(fmt::format("tensor '{}': truncated offset", ti.name));
    uint64_t n = 1;
    for (uint32_t d = 0; d < max_dims; ++d) {
      if (mul_overflow(n, ti.dims[d], n) || n > (uint64_t{1} << 62))
        return corrupt(fmt::format("tensor '{}': element count overflows", ti.name));
    }
    ti.n_elements = n;
    if (ti.dims[0] % tr->block_elems != 0)
      return corrupt(fmt::format("tensor '{}': row length {} is not a multiple of the {} block size {}",
                                 ti.name, ti.dims[0], tr->name, tr->block_elems));
    if (mul_overflow(n / tr->block_elems, tr->block_bytes, ti.size_bytes))
      return corrupt(fmt::format("tensor '{}': byte size overflows", ti.name));
    if (ti.offset % alignment_ != 0)
      return corrupt(fmt::format("tensor '{}': offset {} is not aligned to {}", ti.name, ti.offset, alignment_));
    tensors_.push_back(ti);
  }
  tensor_index_.resize(tensors_.size());
  for (uint32_t i = 0; i < tensor_index_.size(); ++i) tensor_index_[i] = i;
  std::sort(tensor_index_.begin(), tensor_index_.end(),
            [&](uint32_t a, uint32_t b) { return tensors_[a].name < tensors_[b].name; });
  for (size_t i = 1; i < tensor_index_.size(); ++i)
    if (tensors_[tensor_index_[i]].name == tensors_[tensor_index_[i - 1]].name)
      return corrupt(fmt::format("duplicate tensor name '{}'", tensors_[tensor_index_[i]].name));

  // Data section: after the header, padded to the alignment.
  uint64_t pad = (alignment_ - c.pos % alignment_) % alignment_;
  if (tensors_.empty()) {
    data_offset_ = std::min(c.pos + pad, size_);
    return {};
  }
  if (pad > c.left()) return corrupt("truncated before the tensor data section");
  data_offset_ = c.pos + pad;
  uint64_t data_size = size_ - data_offset_;
  for (auto& ti : tensors_) {
    if (ti.offset > data_size || ti.size_bytes > data_size - ti.offset)
      return corrupt(fmt::format("tensor '{}': data [{}, +{}) lies beyond the end of the file "
                                 "(data section is {} bytes; truncated?)",
                                 ti.name, ti.offset, ti.size_bytes, data_size));
    ti.data = base_ + data_offset_ + ti.offset;
  }
  return {};
}

const metadata_kv* file::find(std::string_view key) const noexcept {
  auto it = std::lower_bound(kv_index_.begin(), kv_index_.end(), key,
                             [&](uint32_t i, std::string_view k) { return kvs_[i].key < k; });
  if (it == kv_index_.end() || kvs_[*it].key != key) return nullptr;
  return &kvs_[*it];
}

const tensor_info* file::find_tensor(std::string_view name) const noexcept {
  auto it = std::lower_bound(tensor_index_.begin(), tensor_index_.end(), name,
                             [&](uint32_t i, std::string_view k) { return tensors_[i].name < k; });
  if (it == tensor_index_.end() || tensors_[*it].name != name) return nullptr;
  return &tensors_[*it];
}

namespace {
error missing(std::string_view key) {
  return make_error(errc::not_found, fmt::format("gguf: metadata key '{}' not found", key));
}
template <class T>
result<T> with_key(result<T> r, std::string_view key) {
  if (!r) {
    auto e = r.error();
    e.message = fmt::format("gguf: metadata '{}': {}", key, e.message.substr(e.message.rfind("gguf: ") == 0 ? 6 : 0));
    return e;
  }
  return r;
}
}  // namespace

result<std::string_view> file::get_string(std::string_view key) const {
  auto* kv = find(key);
  if (!kv) return missing(key);
  return with_key(kv->value.as_string(), key);
}
result<int64_t> file::get_int(std::string_view key) const {
  auto* kv = find(key);
  if (!kv) return missing(key);
  return with_key(kv->value.as_int(), key);
}
result<double> file::get_float(std::string_view key) const {
  auto* kv = find(key);
  if (!kv) return missing(key);
  return with_key(kv->value.as_float(), key);
}
result<bool> file::get_bool(std::string_view key) const {
  auto* kv = find(key);
  if (!kv) return missing(key);
  return with_key(kv->value.as_bool(), key);
}
result<int64_t> file::get_int_or(std::string_view key, int64_t def) const {
  return has(key) ? get_int(key) : result<int64_t>(def);
}
result<double> file::get_float_or(std::string_view key, double def) const {
  return has(key) ? get_float(key) : result<double>(def);
}
result<bool> file::get_bool_or(std::string_view key, bool def) const {
  return has(key) ? get_bool(key) : result<bool>(def);
}

result<value_view> file::get_array(std::string_view key) const {
  auto* kv = find(key);
  if (!kv) return missing(key);
  if (!kv->value.is_array())
    return corrupt(fmt::format("metadata '{}': expected an array, found {}", key,
                               value_type_name(kv->value.type())));
  return kv->value;
}

result<std::vector<std::string_view>> file::get_string_array(std::string_view key) const {
  auto a = get_array(key);
  if (!a) return a.error();
  if (a->array_type() != value_type::string)
    return corrupt(fmt::format("metadata '{}': expected an array of strings, found an array of {}",
                               key, value_type_name(a->array_type())));
  std::vector<std::string_view> out;
  uint64_t n = a->array_size();
  out.reserve(static_cast<size_t>(n));
  const uint8_t* p = a->raw().data() + 12;
  for (uint64_t i = 0; i < n; ++i) {  // validated in open()
    uint64_t len = load<uint64_t>(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(len));
    p += 8 + len;
  }
  return out;
}

result<std::vector<float>> file::get_float_array(std::string_view key) const {
  auto a = get_array(key);
  if (!a) return a.error();
  value_type et = a->array_type();
  if (et != value_type::f32 && et != value_type::f64)
    return corrupt(fmt::format("metadata '{}': expected an array of floats, found an array of {}",
                               key, value_type_name(et)));
  uint64_t n = a->array_size();
  std::vector<float> out(static_cast<size_t>(n));
  const uint8_t* p = a->raw().data() + 12;
  for (uint64_t i = 0; i < n; ++i)
    out[i] = et == value_type::f32 ? load<float>(p + 4 * i) : static_cast<float>(load<double>(p + 8 * i));
  return out;
}

result<std::vector<int64_t>> file::get_int_array(std::string_view key) const {
  auto a = get_array(key);
  if (!a) return a.error();
  value_type et = a->array_type();
  uint64_t s = scalar_size(et);
  value_view probe(et, nullptr, 0);
  if (!probe.is_integer())
    return corrupt(fmt::format("metadata '{}': expected an array of integers, found an array of {}",
                               key, value_type_name(et)));
  uint64_t n = a->array_size();
  std::vector<int64_t> out(static_cast<size_t>(n));
  const uint8_t* p = a->raw().data() + 12;
  for (uint64_t i = 0; i < n; ++i) {
    auto v = value_view(et, p + i * s, s).as_int();
    if (!v) return with_key(result<std::vector<int64_t>>(v.error()), key);
    out[i] = *v;
  }
  return out;
}

std::string_view file::architecture() const noexcept {
  auto* kv = find("general.architecture");
  if (!kv || kv->value.type() != value_type::string) return {};
  return *kv->value.as_string();
}

}  // namespace fp::gguf
