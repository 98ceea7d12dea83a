#include "cache/flight.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <functional>

namespace fp::cache {

void flight::notify_locked() {
  for (auto& w : waiters_) {
    if (w->signalled) continue;
    w->signalled = true;
    // Inline when we already run on the waiter's thread (cancel() only queues the wake-up),
    // else posted there: a timer is only ever touched by its own thread.
    boost::asio::dispatch(w->ex, [w] { w->timer.cancel(); });
  }
}

void flight::publish(const api::chunk& c) {
  std::lock_guard lk(mu_);
  chunks_.push_back(c);
  notify_locked();
}

void flight::finish(std::shared_ptr<const entry> e, std::optional<error> err) {
  std::lock_guard lk(mu_);
  done_ = true;
  result_ = std::move(e);
  err_ = std::move(err);
  notify_locked();
}

bool flight::abandoned() const {
  std::lock_guard lk(mu_);
  return abandoned_;
}

size_t flight::waiters() const {
  std::lock_guard lk(mu_);
  return waiters_.size();
}

void flight::set_canceller(boost::asio::any_io_executor ex, std::shared_ptr<boost::asio::cancellation_signal> sig) {
  std::lock_guard lk(mu_);
  runner_ex_ = std::move(ex);
  runner_sig_ = std::move(sig);
  if (cancel_pending_) {  // abandoned before the runner started
    cancel_pending_ = false;
    boost::asio::post(runner_ex_, [sig = runner_sig_] { sig->emit(boost::asio::cancellation_type::terminal); });
  }
}

void flight::cancel_runner() {
  std::lock_guard lk(mu_);
  if (done_) return;
  if (!runner_sig_) {
    cancel_pending_ = true;
    return;
  }
  // The signal is emitted on the runner's own executor (signals are not thread-safe).
  boost::asio::post(runner_ex_, [sig = runner_sig_] { sig->emit(boost::asio::cancellation_type::terminal); });
}

flight::view flight::read(size_t from, const std::shared_ptr<waiter>& w) {
  std::lock_guard lk(mu_);
  view v;
  if (from < chunks_.size()) v.fresh.assign(chunks_.begin() + static_cast<ptrdiff_t>(from), chunks_.end());
  v.done = done_;
  v.result = result_;
  v.err = err_;
  if (w) w->signalled = false;
  return v;
}

flight_table::shard& flight_table::shard_of(const std::string& k) { return shards_[std::hash<std::string>{}(k) % shards]; }

std::shared_ptr<flight> flight_table::join(const std::string& k, const std::shared_ptr<flight::waiter>& w,
                                           bool& leader) {
  shard& s = shard_of(k);
  std::lock_guard lk(s.mu);
  auto [it, inserted] = s.m.try_emplace(k);
  if (inserted) it->second = std::make_shared<flight>();
  leader = inserted;
  flight& f = *it->second;
  {
    std::lock_guard fl(f.mu_);
    f.waiters_.push_back(w);
  }
  return it->second;
}

void flight_table::leave(const std::string& k, const std::shared_ptr<flight>& f,
                         const std::shared_ptr<flight::waiter>& w) {
  bool cancel = false;
  {
    shard& s = shard_of(k);
    std::lock_guard lk(s.mu);
    std::lock_guard fl(f->mu_);
    auto& ws = f->waiters_;
    ws.erase(std::remove(ws.begin(), ws.end(), w), ws.end());
    if (ws.empty() && !f->done_ && !f->abandoned_) {
      f->abandoned_ = true;
      cancel = true;
      if (auto it = s.m.find(k); it != s.m.end() && it->second == f) s.m.erase(it);
    }
  }
  if (cancel) f->cancel_runner();
}

void flight_table::remove(const std::string& k, const flight* f) {
  shard& s = shard_of(k);
  std::lock_guard lk(s.mu);
  if (auto it = s.m.find(k); it != s.m.end() && it->second.get() == f) s.m.erase(it);
}

}  // namespace fp::cache
