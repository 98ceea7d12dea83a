// Private to src/cache (and its tests): the storage layers.
#pragma once

#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/cache.hpp"

namespace fp::cache {

// In-memory LRU, sharded by key hash (one mutex per shard), with a byte budget split evenly
// between shards. Values are shared immutable entries: a hit copies nothing.
class memory_store {
 public:
  memory_store(size_t budget_bytes, size_t shards);
  // The entry when present, not expired at now_ms, and not older than max_age_ms (if >= 0).
  std::shared_ptr<const entry> get(const std::string& k, int64_t now_ms, int64_t max_age_ms = -1);
  void put(const std::string& k, std::shared_ptr<const entry> e);
  void erase(const std::string& k);
  uint64_t entries() const;
  uint64_t bytes() const;
  uint64_t evictions() const;

 private:
  struct item {
    std::string key;
    std::shared_ptr<const entry> e;
    size_t bytes;
  };
  struct shard {
    std::mutex mu;
    std::list<item> lru;  // front = most recent
    std::unordered_map<std::string, std::list<item>::iterator> map;
    size_t bytes = 0;
    uint64_t evictions = 0;
  };
  shard& pick(const std::string& k);
  void erase_locked(shard& s, std::list<item>::iterator it);
  size_t shard_budget_;
  std::vector<std::unique_ptr<shard>> shards_;
};

// LMDB store: one environment (a directory), database "entries" (key -> serialized entry) and
// "semantic" (label -> semantic record). Reads run inline (memory-mapped, no syscalls when warm);
// writes go through one background writer thread that batches them into one transaction.
class lmdb_store {
 public:
  static result<std::unique_ptr<lmdb_store>> open(const std::string& dir, size_t map_bytes, bool sync);
  ~lmdb_store();

  result<std::optional<std::string>> get(const std::string& k);
  // Synchronous write (one transaction).
  result<void> put(const std::string& k, std::string_view value);
  // Queued write, committed by the writer thread (batched).
  void put_async(std::string k, std::string value);
  void put_semantic_async(std::string k, std::string value);
  result<void> erase(const std::string& k);
  // Blocks until every queued write is committed.
  void flush();
  // Deletes expired entries (expires_ms < now_ms). Returns how many.
  result<size_t> sweep(int64_t now_ms);
  // All semantic records (for rebuilding the index at start).
  result<std::vector<std::pair<std::string, std::string>>> semantic_records();
  uint64_t errors() const noexcept { return errors_.load(); }

 private:
  lmdb_store() = default;
  result<void> write_batch(std::vector<std::tuple<int, std::string, std::string>>& batch);
  void writer_loop();
  void* env_ = nullptr;  // MDB_env*
  unsigned dbi_ = 0, sem_dbi_ = 0;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<std::tuple<int, std::string, std::string>> queue_;  // (db, key, value)
  bool stop_ = false;
  bool busy_ = false;
  std::atomic<uint64_t> errors_{0};
  std::thread writer_;
};

}  // namespace fp::cache
