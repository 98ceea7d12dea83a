#include "cache/flight.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <functional>

namespace fp::cache {

void flight::notify_locked() {
  for (auto& w : waiters_) {
    if (w->signalled) continue;
    w->signalled = true;
    boost::asio::post(w->ex, [w] { w->timer.cancel(); });
  }
}

void flight::publish(const api::chunk& c, int64_t) {
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

void flight::add_waiter(const std::shared_ptr<waiter>& w) {
  std::lock_guard lk(mu_);
  waiters_.push_back(w);
}

void flight::remove_waiter(const std::shared_ptr<waiter>& w) {
  std::lock_guard lk(mu_);
  waiters_.erase(std::remove(waiters_.begin(), waiters_.end(), w), waiters_.end());
}

size_t flight::waiters() const {
  std::lock_guard lk(mu_);
  return waiters_.size();
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

std::shared_ptr<flight> flight_table::join(const std::string& k, bool& leader) {
  shard& s = shards_[std::hash<std::string>{}(k) % shards];
  std::lock_guard lk(s.mu);
  auto [it, inserted] = s.m.try_emplace(k);
  if (inserted) it->second = std::make_shared<flight>();
  leader = inserted;
  return it->second;
}

void flight_table::remove(const std::string& k, const flight* f) {
  shard& s = shards_[std::hash<std::string>{}(k) % shards];
  std::lock_guard lk(s.mu);
  if (auto it = s.m.find(k); it != s.m.end() && it->second.get() == f) s.m.erase(it);
}

}  // namespace fp::cache
