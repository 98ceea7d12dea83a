#include <functional>

#include "cache/store.hpp"

namespace fp::cache {

memory_store::memory_store(size_t budget_bytes, size_t shards) {
  if (shards == 0) shards = 1;
  shard_budget_ = budget_bytes / shards;
  for (size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<shard>());
}

memory_store::shard& memory_store::pick(const std::string& k) {
  return *shards_[std::hash<std::string>{}(k) % shards_.size()];
}

void memory_store::erase_locked(shard& s, std::list<item>::iterator it) {
  s.bytes -= it->bytes;
  s.map.erase(it->key);
  s.lru.erase(it);
}

std::shared_ptr<const entry> memory_store::get(const std::string& k, int64_t now_ms, int64_t max_age_ms) {
  shard& s = pick(k);
  std::lock_guard lk(s.mu);
  auto f = s.map.find(k);
  if (f == s.map.end()) return nullptr;
  auto it = f->second;
  if (it->e->expires_ms <= now_ms) {
    erase_locked(s, it);
    return nullptr;
  }
  if (max_age_ms >= 0 && now_ms - it->e->created_ms > max_age_ms) return nullptr;
  s.lru.splice(s.lru.begin(), s.lru, it);
  return it->e;
}

void memory_store::put(const std::string& k, std::shared_ptr<const entry> e) {
  size_t b = e->bytes() + k.size() + 64;
  if (b > shard_budget_) return;
  shard& s = pick(k);
  std::lock_guard lk(s.mu);
  if (auto f = s.map.find(k); f != s.map.end()) erase_locked(s, f->second);
  s.lru.push_front(item{k, std::move(e), b});
  s.map.emplace(k, s.lru.begin());
  s.bytes += b;
  while (s.bytes > shard_budget_ && !s.lru.empty()) {
    erase_locked(s, std::prev(s.lru.end()));
    ++s.evictions;
  }
}

void memory_store::erase(const std::string& k) {
  shard& s = pick(k);
  std::lock_guard lk(s.mu);
  if (auto f = s.map.find(k); f != s.map.end()) erase_locked(s, f->second);
}

uint64_t memory_store::entries() const {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lk(s->mu);
    n += s->map.size();
  }
  return n;
}

uint64_t memory_store::bytes() const {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lk(s->mu);
    n += s->bytes;
  }
  return n;
}

uint64_t memory_store::evictions() const {
  uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lk(s->mu);
    n += s->evictions;
  }
  return n;
}

}  // namespace fp::cache
