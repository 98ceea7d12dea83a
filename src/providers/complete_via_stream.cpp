#include "api/api.hpp"
#include "providers/provider.hpp"

namespace fp::providers {

boost::asio::awaitable<bool> chunk_sink::on_chunks(std::span<const api::chunk> cs) {
  for (const auto& c : cs)
    if (!co_await on_chunk(c)) co_return false;
  co_return true;
}

boost::asio::awaitable<result<api::response>> complete_via_stream(provider& p,
                                                                  const api::request& req,
                                                                  const call_options& opts,
                                                                  call_stats& stats) {
  struct collector final : chunk_sink {
    api::chunk_aggregator agg;
    boost::asio::awaitable<bool> on_chunk(const api::chunk& c) override {
      (void)agg.add(c);
      co_return true;
    }
  } col;
  api::request r2 = req;
  r2.stream = true;
  r2.include_usage = true;
  auto u = co_await p.stream(r2, opts, col, stats);
  if (!u) co_return u.error();
  stats.first_byte_sent = false;
  co_return col.agg.finish();
}

}  // namespace fp::providers
