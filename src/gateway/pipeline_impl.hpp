// Private to src/gateway: the http::handler that runs the pipeline.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/types.hpp"
#include "gateway/gateway.hpp"
#include "http/http.hpp"

namespace fp::gateway {

class pipeline final : public http::handler {
 public:
  using lookup_fn = std::function<std::span<const deployment>(std::string_view model)>;
  pipeline(const config& cfg, lookup_fn lookup, std::string models_json)
      : cfg_(cfg), lookup_(std::move(lookup)), models_json_(std::move(models_json)) {}

  boost::asio::awaitable<void> handle(http::request& req, http::responder& res) override;

  std::shared_ptr<cache_hook> cache_;  // null: no cache (the router is called directly)
  std::shared_ptr<router> router_ = std::make_shared<router>();
  std::vector<std::shared_ptr<request_stage>> stages_;

 private:
  std::span<const deployment> gw_deployments(std::string_view model) const { return lookup_(model); }
  boost::asio::awaitable<void> handle_other(http::request& req, http::responder& res);
  std::optional<error> check_auth(const http::request& req, std::string& api_key) const;
  std::optional<error> begin_request(http::request& req, api::endpoint kind, request_context& ctx);
  boost::asio::awaitable<void> fail_request(request_context* ctx, const http::request& req, http::responder& res,
                                            const error& e);
  boost::asio::awaitable<void> handle_complete(request_context& ctx, http::responder& res);
  bool respond_complete(request_context& ctx, http::responder& res, const api::response& r);
  boost::asio::awaitable<void> handle_stream(request_context& ctx, http::responder& res);
  boost::asio::awaitable<void> handle_tokenize(http::request& req, http::responder& res, bool encode);
  boost::asio::awaitable<void> respond_json(http::responder& res, int status, std::string_view body,
                                            const http::header_list* extra = nullptr);
  boost::asio::awaitable<void> respond_error(http::responder& res, const error& e,
                                             const http::header_list* extra = nullptr);
  void finish_log(request_context* ctx, const http::request& req, int status, bool stream, int64_t chunks,
                  const error* err, const api::usage* u);

  const config& cfg_;
  lookup_fn lookup_;
  std::string models_json_;
};

}  // namespace fp::gateway
