// Entry serialisation (the bytes stored on disk and in Redis). Little-endian, versioned, every
// length validated: a corrupt or foreign value is an error, never a crash.
#include <cstring>

#include "cache/cache.hpp"

namespace fp::cache {

namespace {
constexpr char magic[4] = {'F', 'P', 'C', '1'};

void put_u32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void put_i64(std::string& s, int64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
void put_str(std::string& s, std::string_view v) {
  put_u32(s, static_cast<uint32_t>(v.size()));
  s.append(v);
}

struct reader {
  std::string_view in;
  bool ok = true;
  template <class T>
  T num() {
    T v{};
    if (in.size() < sizeof v) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof v);
    in.remove_prefix(sizeof v);
    return v;
  }
  std::string str() {
    uint32_t n = num<uint32_t>();
    if (!ok || in.size() < n) {
      ok = false;
      return {};
    }
    std::string s(in.substr(0, n));
    in.remove_prefix(n);
    return s;
  }
};
}  // namespace

size_t entry::bytes() const noexcept {
  size_t n = sizeof(entry) + response.size() + chunk_at_us.size() * 8;
  for (const auto& c : chunks) n += sizeof(api::chunk) + c.json.size() + c.content.size();
  return n;
}

std::string serialize(const entry& e) {
  std::string s;
  s.reserve(e.bytes() + 64);
  s.append(magic, 4);
  put_i64(s, e.created_ms);
  put_i64(s, e.expires_ms);
  put_i64(s, e.upstream_latency_ns);
  put_u32(s, static_cast<uint32_t>(e.chunks.size()));
  for (size_t i = 0; i < e.chunks.size(); ++i) {
    const auto& c = e.chunks[i];
    put_str(s, c.json);
    put_str(s, c.content);
    put_i64(s, i < e.chunk_at_us.size() ? e.chunk_at_us[i] : 0);
    uint32_t flags = static_cast<uint32_t>(c.finish) | (c.has_tool_calls ? 0x100u : 0u) | (c.usage ? 0x200u : 0u);
    put_u32(s, flags);
    if (c.usage) {
      put_i64(s, c.usage->prompt_tokens);
      put_i64(s, c.usage->completion_tokens);
      put_i64(s, c.usage->cached_prompt_tokens);
    }
  }
  put_str(s, e.response);
  return s;
}

result<entry> deserialize(std::string_view bytes) {
  auto bad = [] { return make_error(errc::corrupt_data, "cache entry: corrupt"); };
  if (bytes.size() < 4 || std::memcmp(bytes.data(), magic, 4) != 0) return bad();
  reader r{bytes.substr(4)};
  entry e;
  e.created_ms = r.num<int64_t>();
  e.expires_ms = r.num<int64_t>();
  e.upstream_latency_ns = r.num<int64_t>();
  uint32_t n = r.num<uint32_t>();
  if (!r.ok || n > r.in.size() / 16) return bad();
  e.chunks.reserve(n);
  e.chunk_at_us.reserve(n);
  for (uint32_t i = 0; i < n && r.ok; ++i) {
    api::chunk c;
    c.json = r.str();
    c.content = r.str();
    e.chunk_at_us.push_back(r.num<int64_t>());
    uint32_t flags = r.num<uint32_t>();
    uint32_t fin = flags & 0xff;
    if (fin > static_cast<uint32_t>(api::finish_reason::error)) return bad();
    c.finish = static_cast<api::finish_reason>(fin);
    c.has_tool_calls = flags & 0x100;
    if (flags & 0x200) {
      api::usage u;
      u.prompt_tokens = r.num<int64_t>();
      u.completion_tokens = r.num<int64_t>();
      u.cached_prompt_tokens = r.num<int64_t>();
      c.usage = u;
    }
    e.chunks.push_back(std::move(c));
  }
  e.response = r.str();
  if (!r.ok || !r.in.empty()) return bad();
  return e;
}

}  // namespace fp::cache
