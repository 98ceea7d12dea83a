// LMDB layer. Crash safety comes from LMDB itself: copy-on-write B+tree pages and a meta page
// flipped last, so a process killed mid-transaction leaves the previous committed state (the OS
// page cache holds what was written even without fsync; disk_sync adds power-loss durability).
#include <lmdb.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "cache/store.hpp"

namespace fp::cache {

namespace {
constexpr int db_entries = 0;
constexpr int db_semantic = 1;
constexpr int op_erase = 2;  // flag added to db in the queue

error lmdb_error(const char* what, int rc) {
  return make_error(errc::io_error, std::string("lmdb: ") + what + ": " + mdb_strerror(rc));
}

MDB_env* env_of(void* p) { return static_cast<MDB_env*>(p); }

// expires_ms of a stored value: entries (FPC1 header) and semantic records (first 8 bytes).
bool expired(int db, const MDB_val& v, int64_t now_ms) {
  int64_t exp = 0;
  if (db == db_entries) {
    if (v.mv_size < 20 || std::memcmp(v.mv_data, "FPC1", 4) != 0) return true;
    std::memcpy(&exp, static_cast<const char*>(v.mv_data) + 12, 8);
  } else {
    if (v.mv_size < 8) return true;
    std::memcpy(&exp, v.mv_data, 8);
  }
  return exp <= now_ms;
}
}  // namespace

result<std::unique_ptr<lmdb_store>> lmdb_store::open(const std::string& dir, size_t map_bytes, bool sync) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return make_error(errc::io_error, "lmdb: cannot create " + dir + ": " + std::strerror(errno));
  std::unique_ptr<lmdb_store> s(new lmdb_store());
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc) return lmdb_error("env_create", rc);
  s->env_ = env;
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_maxreaders(env, 512);
  mdb_env_set_mapsize(env, map_bytes);
  unsigned flags = MDB_NOTLS | MDB_NOMETASYNC;
  if (!sync) flags |= MDB_NOSYNC;
  rc = mdb_env_open(env, dir.c_str(), flags, 0600);
  if (rc) return lmdb_error("open", rc);
  int dead = 0;
  mdb_reader_check(env, &dead);  // slots of killed processes
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env, nullptr, 0, &txn);
  if (rc) return lmdb_error("txn_begin", rc);
  MDB_dbi a = 0, b = 0;
  if ((rc = mdb_dbi_open(txn, "entries", MDB_CREATE, &a)) || (rc = mdb_dbi_open(txn, "semantic", MDB_CREATE, &b))) {
    mdb_txn_abort(txn);
    return lmdb_error("dbi_open", rc);
  }
  rc = mdb_txn_commit(txn);
  if (rc) return lmdb_error("commit", rc);
  s->dbi_ = a;
  s->sem_dbi_ = b;
  s->writer_ = std::thread([p = s.get()] { p->writer_loop(); });
  return s;
}

lmdb_store::~lmdb_store() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (env_) mdb_env_close(env_of(env_));
}

result<std::optional<std::string>> lmdb_store::get(const std::string& k) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_of(env_), nullptr, MDB_RDONLY, &txn);
  if (rc) {
    ++errors_;
    return lmdb_error("read txn", rc);
  }
  MDB_val key{k.size(), const_cast<char*>(k.data())}, val{};
  rc = mdb_get(txn, dbi_, &key, &val);
  std::optional<std::string> out;
  if (rc == 0) out.emplace(static_cast<const char*>(val.mv_data), val.mv_size);
  mdb_txn_abort(txn);
  if (rc && rc != MDB_NOTFOUND) {
    ++errors_;
    return lmdb_error("get", rc);
  }
  return out;
}

result<void> lmdb_store::write_batch(std::vector<std::tuple<int, std::string, std::string>>& batch) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_of(env_), nullptr, 0, &txn);
    if (rc) return lmdb_error("write txn", rc);
    for (auto& [db, k, v] : batch) {
      MDB_dbi dbi = (db & 1) == db_semantic ? sem_dbi_ : dbi_;
      MDB_val key{k.size(), k.data()};
      if (db & op_erase) {
        rc = mdb_del(txn, dbi, &key, nullptr);
        if (rc == MDB_NOTFOUND) rc = 0;
      } else {
        MDB_val val{v.size(), v.data()};
        rc = mdb_put(txn, dbi, &key, &val, 0);
      }
      if (rc) break;
    }
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc == 0) return {};
    if (rc != MDB_MAP_FULL && rc != MDB_TXN_FULL) return lmdb_error("write", rc);
    // Full: drop expired entries, then (second attempt) a tenth of all entries (keys are hashes,
    // so key order is random order).
    int64_t now = system_clock::instance().wall_ms();
    if (attempt == 0) {
      (void)sweep(now);
    } else {
      MDB_txn* t = nullptr;
      if (mdb_txn_begin(env_of(env_), nullptr, 0, &t)) continue;
      MDB_stat st{};
      mdb_stat(t, dbi_, &st);
      size_t drop = st.ms_entries / 10 + 1;
      MDB_cursor* cur = nullptr;
      mdb_cursor_open(t, dbi_, &cur);
      MDB_val kk, vv;
      while (drop-- && mdb_cursor_get(cur, &kk, &vv, MDB_NEXT) == 0) mdb_cursor_del(cur, 0);
      mdb_cursor_close(cur);
      if (mdb_txn_commit(t)) continue;
    }
  }
  return make_error(errc::io_error, "lmdb: store full");
}

result<void> lmdb_store::put(const std::string& k, std::string_view value) {
  std::vector<std::tuple<int, std::string, std::string>> b;
  b.emplace_back(db_entries, k, std::string(value));
  auto r = write_batch(b);
  if (!r) ++errors_;
  return r;
}

result<void> lmdb_store::erase(const std::string& k) {
  std::vector<std::tuple<int, std::string, std::string>> b;
  b.emplace_back(db_entries | op_erase, k, std::string());
  auto r = write_batch(b);
  if (!r) ++errors_;
  return r;
}

void lmdb_store::put_async(std::string k, std::string value) {
  {
    std::lock_guard lk(mu_);
    if (queue_.size() > 10000) {  // the disk cannot keep up: drop (a cache may forget)
      ++errors_;
      return;
    }
    queue_.emplace_back(db_entries, std::move(k), std::move(value));
  }
  cv_.notify_one();
}

void lmdb_store::put_semantic_async(std::string k, std::string value) {
  {
    std::lock_guard lk(mu_);
    queue_.emplace_back(db_semantic, std::move(k), std::move(value));
  }
  cv_.notify_one();
}

void lmdb_store::flush() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
}

void lmdb_store::writer_loop() {
  std::vector<std::tuple<int, std::string, std::string>> batch;
  size_t since_sweep = 0;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) return;
      while (!queue_.empty() && batch.size() < 256) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      busy_ = true;
    }
    since_sweep += batch.size();
    if (!write_batch(batch)) ++errors_;
    batch.clear();
    if (since_sweep > 4096) {
      since_sweep = 0;
      (void)sweep(system_clock::instance().wall_ms());
    }
    {
      std::lock_guard lk(mu_);
      busy_ = false;
    }
    idle_cv_.notify_all();
  }
}

result<size_t> lmdb_store::sweep(int64_t now_ms) {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_of(env_), nullptr, 0, &txn);
  if (rc) return lmdb_error("sweep txn", rc);
  size_t n = 0;
  for (int db : {db_entries, db_semantic}) {
    MDB_cursor* cur = nullptr;
    if (mdb_cursor_open(txn, db == db_entries ? dbi_ : sem_dbi_, &cur)) continue;
    MDB_val k, v;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
      if (expired(db, v, now_ms) && mdb_cursor_del(cur, 0) == 0) ++n;
    }
    mdb_cursor_close(cur);
  }
  rc = mdb_txn_commit(txn);
  if (rc) return lmdb_error("sweep commit", rc);
  return n;
}

result<std::vector<std::pair<std::string, std::string>>> lmdb_store::semantic_records() {
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_of(env_), nullptr, MDB_RDONLY, &txn);
  if (rc) return lmdb_error("read txn", rc);
  std::vector<std::pair<std::string, std::string>> out;
  MDB_cursor* cur = nullptr;
  if (mdb_cursor_open(txn, sem_dbi_, &cur) == 0) {
    MDB_val k, v;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
      out.emplace_back(std::string(static_cast<const char*>(k.mv_data), k.mv_size),
                       std::string(static_cast<const char*>(v.mv_data), v.mv_size));
    mdb_cursor_close(cur);
  }
  mdb_txn_abort(txn);
  return out;
}

}  // namespace fp::cache
