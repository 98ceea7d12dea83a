// Per-thread spares: objects (buffers, parser state) a finished request gives back so the next
// request on the same thread reuses their memory instead of allocating. Each thread keeps at most
// `Max` of them; nothing is shared between threads.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace fp {

template <class T, size_t Max = 64>
class thread_spares {
 public:
  // One given back earlier on this thread, else a value-initialized T (empty, or null).
  static T take() {
    auto& s = list();
    if (s.empty()) return T{};
    T t = std::move(s.back());
    s.pop_back();
    return t;
  }
  static void give(T&& t) {
    auto& s = list();
    if (s.size() < Max) s.push_back(std::move(t));
  }

 private:
  static std::vector<T>& list() {
    thread_local std::vector<T> s;
    return s;
  }
};

}  // namespace fp
