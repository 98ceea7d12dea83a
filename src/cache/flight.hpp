// Private to src/cache: single-flight state shared by the leader (which calls upstream) and the
// followers (identical requests that arrived while it ran). Thread-safe: followers may live on
// other io_context threads; the leader wakes each by posting to the follower's own executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cache/cache.hpp"

namespace fp::cache {

class flight {
 public:
  struct waiter {
    explicit waiter(boost::asio::any_io_executor ex) : ex(ex), timer(ex) {}
    boost::asio::any_io_executor ex;
    boost::asio::steady_timer timer;
    bool signalled = false;  // guarded by flight::mu_
  };

  // Leader side.
  void publish(const api::chunk& c, int64_t at_us);
  // Ends the flight: `e` is the complete answer (also when not stored), or null with an error.
  void finish(std::shared_ptr<const entry> e, std::optional<error> err);

  // Follower side.
  void add_waiter(const std::shared_ptr<waiter>& w);
  void remove_waiter(const std::shared_ptr<waiter>& w);
  size_t waiters() const;

  struct view {
    std::vector<api::chunk> fresh;  // chunks from index `from` on
    bool done = false;
    std::shared_ptr<const entry> result;
    std::optional<error> err;
  };
  view read(size_t from, const std::shared_ptr<waiter>& w);

 private:
  void notify_locked();
  mutable std::mutex mu_;
  std::vector<api::chunk> chunks_;
  bool done_ = false;
  std::shared_ptr<const entry> result_;
  std::optional<error> err_;
  std::vector<std::shared_ptr<waiter>> waiters_;
};

// Flights by key.
class flight_table {
 public:
  // The flight for k; leader = true when this call created it.
  std::shared_ptr<flight> join(const std::string& k, bool& leader);
  void remove(const std::string& k, const flight* f);

 private:
  static constexpr size_t shards = 16;
  struct shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<flight>> m;
  };
  shard shards_[shards];
};

}  // namespace fp::cache
