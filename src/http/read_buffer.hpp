// Private to src/http: the bytes read from a socket and not yet used, [begin, end) of one heap
// buffer that is compacted and grown (up to a limit) only when a reader needs room. The server's
// sessions and the upstream client's connections read through one each.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace fp::http {

struct read_buffer {
  std::unique_ptr<char[]> buf;
  size_t cap = 0, begin = 0, end = 0;

  size_t size() const noexcept { return end - begin; }
  const char* data() const noexcept { return buf.get() + begin; }
  std::string_view view() const noexcept { return {data(), size()}; }
  char* space() noexcept { return buf.get() + end; }  // where the next read goes
  size_t space_size() const noexcept { return cap - end; }

  // Room to read into at [end, cap): drops used bytes first, grows up to `limit` bytes in all.
  // False when the buffer is full of unused bytes at the limit already.
  bool make_room(size_t limit) {
    if (begin == end) begin = end = 0;
    if (end < cap) return true;
    if (begin > 0) {
      std::memmove(buf.get(), buf.get() + begin, end - begin);
      end -= begin;
      begin = 0;
      return true;
    }
    if (cap >= limit) return false;
    size_t ncap = std::min(limit, std::max<size_t>(cap * 2, 4096));
    std::unique_ptr<char[]> nb(new char[ncap]);
    if (end > 0) std::memcpy(nb.get(), buf.get(), end);
    buf = std::move(nb);
    cap = ncap;
    return true;
  }
};

}  // namespace fp::http
