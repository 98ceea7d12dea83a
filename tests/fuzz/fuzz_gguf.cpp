// libFuzzer target: the GGUF reader must reject or accept any byte string without a crash or an
// out-of-bounds read, and every getter on an accepted file must stay in bounds.
#include <cstddef>
#include <cstdint>

#include "gguf/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = fp::gguf::file::from_buffer({data, size}, /*copy=*/false);
  if (!f) return 0;
  const auto& g = **f;
  for (const auto& kv : g.metadata()) {
    (void)g.get_int(kv.key);
    (void)g.get_float(kv.key);
    (void)g.get_bool(kv.key);
    (void)g.get_string(kv.key);
    (void)g.get_string_array(kv.key);
    (void)g.get_float_array(kv.key);
    (void)g.get_int_array(kv.key);
    if (kv.value.is_array() && kv.value.array_size() > 0) {
      auto v = kv.value.array_at(kv.value.array_size() - 1);
      (void)v.as_int();
      (void)v.as_string();
    }
  }
  volatile uint8_t sink = 0;
  for (const auto& t : g.tensors()) {
    (void)g.find_tensor(t.name);
    if (t.size_bytes) sink = sink + t.data[0] + t.data[t.size_bytes - 1];
  }
  return 0;
}
