// libFuzzer target: the HTTP/1.1 head parser and chunked decoder (src/http/wire), which parse
// bytes from clients and upstreams. Checks the invariants callers rely on: a parsed head lies
// inside the input, incremental parsing agrees with one-shot parsing, the decoder never writes
// past its capacity and never claims more input than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/wire.hpp"

using namespace fp::http::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool response = data[0] & 1;
  const size_t split = size > 1 ? data[1] % size : 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  in.remove_prefix(std::min<size_t>(2, size));

  head h;
  head_scan scan;
  auto parse_at = [&](std::string_view b, head_scan& s) {
    return response ? parse_response_head(b, h, s, 4096) : parse_request_head(b, h, s, 4096);
  };
  parse_result once = parse_at(in, scan);
  if (once.status == parse::done) {
    if (h.size == 0 || h.size > in.size()) std::abort();
    for (const auto& f : h.fields)
      if (f.name.data() < in.data() || f.value.data() + f.value.size() > in.data() + h.size) std::abort();
    // Incremental: a prefix first, then the whole input, must reach the same head.
    head_scan s2;
    head h1 = h;
    parse_at(in.substr(0, std::min(split, in.size())), s2);
    parse_result again = parse_at(in, s2);
    if (again.status != parse::done || h.size != h1.size || h.body != h1.body ||
        h.content_length != h1.content_length || h.fields.size() != h1.fields.size())
      std::abort();
  }

  chunked_decoder d;
  char out[64];
  size_t pos = 0;
  size_t cap = 1 + split % 64;
  while (pos < in.size()) {
    auto st = d.decode(in.data() + pos, in.size() - pos, out, cap);
    if (st.consumed > in.size() - pos || st.produced > cap) std::abort();
    pos += st.consumed;
    if (st.error || st.done || (st.consumed == 0 && st.produced == 0)) break;
  }
  return 0;
}
