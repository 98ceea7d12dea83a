// Private to src/cache: single-flight state. The upstream call belongs to the flight, not to the
// request that started it: it runs as its own coroutine (the runner, cache.cpp) and publishes
// chunks here; every request waiting for the answer, the first one included, is a waiter that
// reads the backlog and then the live chunks. When the last waiter leaves before the answer is
// complete, the flight is abandoned (removed from the table) and the runner is cancelled.
// Thread-safe: waiters may live on other io_context threads; the runner wakes each by a
// dispatch to the waiter's own executor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
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

  // Runner side.
  void publish(const api::chunk& c);
  // Ends the flight: `e` is the complete answer (also when not stored), or null with an error.
  void finish(std::shared_ptr<const entry> e, std::optional<error> err);
  // Whether anyone still waits (the runner's sink stops the upstream call when not).
  bool abandoned() const;
  size_t waiters() const;

  // Cancels the runner; set by the runner before it starts, emitted on its executor.
  void set_canceller(boost::asio::any_io_executor ex, std::shared_ptr<boost::asio::cancellation_signal> sig);
  void cancel_runner();

  struct view {
    std::vector<api::chunk> fresh;  // chunks from index `from` on
    bool done = false;
    std::shared_ptr<const entry> result;
    std::optional<error> err;
  };
  view read(size_t from, const std::shared_ptr<waiter>& w);

 private:
  friend class flight_table;
  void notify_locked();
  mutable std::mutex mu_;
  std::vector<api::chunk> chunks_;
  bool done_ = false, abandoned_ = false, cancel_pending_ = false;
  std::shared_ptr<const entry> result_;
  std::optional<error> err_;
  std::vector<std::shared_ptr<waiter>> waiters_;
  boost::asio::any_io_executor runner_ex_;
  std::shared_ptr<boost::asio::cancellation_signal> runner_sig_;
};

// Flights by key. A waiter is registered under the table's shard lock, so a flight that lost
// its last waiter is never joined again (it is removed in the same critical section).
class flight_table {
 public:
  // The flight for k with w registered as a waiter; leader = true when this call created it.
  std::shared_ptr<flight> join(const std::string& k, const std::shared_ptr<flight::waiter>& w, bool& leader);
  // Deregisters w. When w was the last waiter of an unfinished flight, the flight is abandoned:
  // removed from the table and its runner cancelled.
  void leave(const std::string& k, const std::shared_ptr<flight>& f, const std::shared_ptr<flight::waiter>& w);
  // Removes a finished flight (the runner, after storing the answer).
  void remove(const std::string& k, const flight* f);

 private:
  static constexpr size_t shards = 16;
  struct shard {
    std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<flight>> m;
  };
  shard& shard_of(const std::string& k);
  shard shards_[shards];
};

// A request's place in a flight: leaves it however the request ends (also on cancellation).
struct flight_membership {
  flight_table* table = nullptr;
  std::string key;
  std::shared_ptr<flight> fl;
  std::shared_ptr<flight::waiter> w;
  flight_membership() = default;
  flight_membership(const flight_membership&) = delete;
  flight_membership& operator=(const flight_membership&) = delete;
  ~flight_membership() {
    if (table && fl && w) table->leave(key, fl, w);
  }
};

}  // namespace fp::cache
