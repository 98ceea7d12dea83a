// POST /v1/tokenize and /v1/detokenize (vLLM-style bodies), backed by src/tokenizer.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include "api/api.hpp"
#include "gateway/pipeline_impl.hpp"

#ifdef FP_HAVE_TOKENIZER
#include "tokenizer/tokenizer.hpp"
#endif

namespace fp::gateway {

using boost::asio::awaitable;

awaitable<void> pipeline::handle_tokenize(http::request& req, http::responder& res, bool encode) {
  boost::system::error_code ec;
  auto v = boost::json::parse(req.body, ec);
  if (ec || !v.is_object()) {
    co_await respond_error(res, make_error(errc::invalid_request, "the body must be a JSON object"));
    finish_log(nullptr, req, 400, false, 0, nullptr, nullptr);
    co_return;
  }
  auto& o = v.as_object();
#ifdef FP_HAVE_TOKENIZER
  std::string name;
  if (auto* e = o.if_contains("encoding"); e && e->is_string()) name = std::string(e->as_string());
  else if (auto* m = o.if_contains("model"); m && m->is_string()) name = std::string(m->as_string());
  if (name.empty()) name = "o200k_base";
  auto tok = tokenizer::tokenizer_for(name);
  if (!tok) {
    auto e = tok.error();
    co_await respond_error(res, e);
    finish_log(nullptr, req, e.status(), false, 0, &e, nullptr);
    co_return;
  }
  boost::json::object out;
  if (encode) {
    auto* p = o.if_contains("prompt");
    if (!p) p = o.if_contains("text");
    if (!p || !p->is_string()) {
      auto e = make_error(errc::invalid_request, "`prompt` must be a string");
      co_await respond_error(res, e);
      finish_log(nullptr, req, 400, false, 0, &e, nullptr);
      co_return;
    }
    auto ids = (*tok)->encode(std::string_view(p->as_string()));
    boost::json::array arr;
    arr.reserve(ids.size());
    for (auto id : ids) arr.push_back(id);
    out["count"] = ids.size();
    out["tokens"] = std::move(arr);
  } else {
    auto* t = o.if_contains("tokens");
    std::vector<tokenizer::token_id> ids;
    bool ok = t && t->is_array();
    if (ok)
      for (const auto& x : t->as_array()) {
        if (!x.is_int64() && !x.is_uint64()) {
          ok = false;
          break;
        }
        ids.push_back(static_cast<tokenizer::token_id>(x.to_number<int64_t>()));
      }
    if (!ok) {
      auto e = make_error(errc::invalid_request, "`tokens` must be an array of integers");
      co_await respond_error(res, e);
      finish_log(nullptr, req, 400, false, 0, &e, nullptr);
      co_return;
    }
    auto text = (*tok)->decode(ids);
    if (!text) {
      auto e = text.error();
      co_await respond_error(res, e);
      finish_log(nullptr, req, e.status(), false, 0, &e, nullptr);
      co_return;
    }
    out["prompt"] = *text;
  }
  out["encoding"] = std::string((*tok)->name());
  co_await respond_json(res, 200, boost::json::serialize(out));
  finish_log(nullptr, req, 200, false, 0, nullptr, nullptr);
#else
  (void)o;
  (void)encode;
  auto e = make_error(errc::unsupported, "this build has no tokenizer", 501);
  co_await respond_error(res, e);
  finish_log(nullptr, req, 501, false, 0, &e, nullptr);
#endif
}

}  // namespace fp::gateway
