// Private to src/providers: what the HTTP-based providers (openai, anthropic) share.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <charconv>
#include <memory>
#include <span>
#include <vector>
#include <string>
#include <string_view>

#include "api/api.hpp"
#include "common/thread_spares.hpp"
#include "http/http.hpp"
#include "providers/provider.hpp"

namespace fp::providers::detail {

// The chunks parsed from one upstream read, handed to the sink at once. Kept per thread between
// streams (the chunk objects and their strings keep their buffers), so parsing a chunk allocates
// nothing once a thread has streamed a few responses. Sinks that keep chunks copy them.
class chunk_batch {
 public:
  chunk_batch() : items_(thread_spares<std::vector<api::chunk>>::take()) {}
  ~chunk_batch() {
    if (items_.capacity() > 0) thread_spares<std::vector<api::chunk>>::give(std::move(items_));
  }
  chunk_batch(const chunk_batch&) = delete;
  chunk_batch& operator=(const chunk_batch&) = delete;

  api::chunk& add() {
    if (n_ == items_.size()) items_.emplace_back();
    return items_[n_++];
  }
  void drop_last() noexcept { --n_; }
  void clear() noexcept { n_ = 0; }
  bool empty() const noexcept { return n_ == 0; }
  std::span<const api::chunk> view() const noexcept { return {items_.data(), n_}; }

 private:
  std::vector<api::chunk> items_;
  size_t n_ = 0;
};

// An SSE parser, its event and the stream's chunk parser, kept per thread between streams (their
// buffers keep their memory): a stream's parsing allocates nothing once a thread has streamed a
// few responses.
class pooled_sse {
  struct state {
    api::sse_parser parser;
    api::sse_event ev;
    api::openai_chunk_parser chunks;
  };
  using spares = thread_spares<std::unique_ptr<state>>;

 public:
  pooled_sse() : s_(spares::take()) {
    if (!s_) {
      s_ = std::make_unique<state>();
    } else {
      s_->parser.reset();
      s_->ev.event.clear();
      s_->ev.data.clear();
      s_->chunks.reset();
    }
  }
  ~pooled_sse() { spares::give(std::move(s_)); }
  pooled_sse(const pooled_sse&) = delete;
  pooled_sse& operator=(const pooled_sse&) = delete;
  api::sse_parser& parser() noexcept { return s_->parser; }
  api::sse_event& event() noexcept { return s_->ev; }
  api::openai_chunk_parser& chunks() noexcept { return s_->chunks; }

 private:
  std::unique_ptr<state> s_;
};

inline http::client_timeouts timeouts_of(const call_options& o) {
  http::client_timeouts t;
  t.connect = o.connect_timeout;
  t.first_byte = o.first_byte_timeout;
  t.chunk_gap = o.chunk_gap_timeout;
  t.total = o.total_timeout;
  return t;
}

inline double parse_retry_after(std::string_view v) {
  double s = -1;
  if (v.empty()) return -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (ec != std::errc{}) return -1;
  return s;
}

// Reads an upstream error answer (bounded) and turns it into an fp::error with its status.
inline boost::asio::awaitable<error> read_upstream_error(http::client_response& r, api::wire_format f,
                                                         call_stats& stats) {
  stats.status = r.status();
  stats.retry_after_s = parse_retry_after(r.header("retry-after"));
  auto body = co_await r.read_all(1 << 20);
  std::string_view text = body ? std::string_view(*body) : std::string_view{};
  co_return api::upstream_error_from_body(r.status(), text, f);
}

}  // namespace fp::providers::detail
