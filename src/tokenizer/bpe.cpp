// The heap-based tiktoken merge loop for long pieces (same merge order as bpe_small).
#include <algorithm>
#include <functional>

#include "tokenizer/bpe_table.hpp"

namespace fp::tokenizer::detail {

void bpe_large(const bytes_table& t, const unsigned char* p, size_t n, std::vector<int32_t>& out) {
  struct node {
    uint32_t start;
    int32_t prev, next;  // part indices, -1 at the ends
    int32_t seg;         // id of this part
    uint32_t pair;       // rank of merging with next
  };
  std::vector<node> nodes(n);
  std::vector<uint64_t> heap;  // (rank << 32) | start; min-heap
  heap.reserve(n);
  auto end_of = [&](size_t i) -> uint32_t {
    return nodes[i].next < 0 ? static_cast<uint32_t>(n) : nodes[nodes[i].next].start;
  };
  auto pair_rank = [&](size_t i) -> uint32_t {
    if (nodes[i].next < 0) return no_rank;
    const uint32_t s = nodes[i].start;
    return static_cast<uint32_t>(t.find(p + s, end_of(nodes[i].next) - s));
  };
  for (size_t i = 0; i < n; ++i) {
    nodes[i] = node{static_cast<uint32_t>(i), static_cast<int32_t>(i) - 1,
                    i + 1 < n ? static_cast<int32_t>(i + 1) : -1, t.byte_id(p[i]), no_rank};
  }
  for (size_t i = 0; i + 1 < n; ++i) {
    nodes[i].pair = static_cast<uint32_t>(t.pair_id(p + i));
    if (nodes[i].pair != no_rank) heap.push_back((uint64_t(nodes[i].pair) << 32) | i);
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const uint32_t r = static_cast<uint32_t>(top >> 32);
    const size_t i = static_cast<uint32_t>(top);
    if (!alive[i] || nodes[i].pair != r) continue;  // stale
    const int32_t j = nodes[i].next;
    nodes[i].seg = static_cast<int32_t>(r);
    nodes[i].next = nodes[j].next;
    if (nodes[j].next >= 0) nodes[nodes[j].next].prev = static_cast<int32_t>(i);
    alive[j] = false;
    nodes[i].pair = pair_rank(i);
    if (nodes[i].pair != no_rank) {
      heap.push_back((uint64_t(nodes[i].pair) << 32) | i);
      std::push_heap(heap.begin(), heap.end(), std::greater<>());
    }
    const int32_t pv = nodes[i].prev;
    if (pv >= 0) {
      nodes[pv].pair = pair_rank(pv);
      if (nodes[pv].pair != no_rank) {
        heap.push_back((uint64_t(nodes[pv].pair) << 32) | static_cast<uint32_t>(pv));
        std::push_heap(heap.begin(), heap.end(), std::greater<>());
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = nodes[i].next) out.push_back(nodes[i].seg);
}

}  // namespace fp::tokenizer::detail
