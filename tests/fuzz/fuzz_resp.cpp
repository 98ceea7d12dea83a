// libFuzzer target: the RESP reader (Redis replies are outside input) fed in random splits, and
// the cache entry decoder (values read back from Redis and LMDB).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cache/cache.hpp"
#include "redis/redis.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    (void)fp::cache::deserialize(in);
    return 0;
  }
  fp::redis::resp_parser p;
  size_t step = 1 + data[0] % 17;
  for (size_t i = 0; i < in.size(); i += step) {
    if (!p.feed(in.substr(i, step))) break;
    fp::redis::reply r;
    int got;
    while ((got = p.next(r)) == 1) {
    }
    if (got < 0) break;
  }
  return 0;
}
