// `fastpath mock`: a standalone simulated upstream on Beast + coroutines, one io_context per
// thread (SO_REUSEPORT), speaking the OpenAI or Anthropic wire format. Responses are written as raw
// HTTP/1.1 bytes (streams with chunked transfer encoding, one SSE event per chunk, flushed before
// each wait) so the bytes match what the real APIs send.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <thread>

#include "api/json_util.hpp"
#include "providers/mock.hpp"

namespace fp::providers {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using asio::as_tuple;
using asio::use_awaitable;
using namespace asio::experimental::awaitable_operators;

struct mock_stats {
  std::atomic<uint64_t> requests{0}, active{0}, completed{0}, cancelled{0}, errors{0};
  std::atomic<uint64_t> auth_bearer{0}, auth_x_api_key{0};
  std::atomic<int64_t> last_cancel_mono_ns{-1}, last_cancel_unix_ms{-1};
  std::atomic<uint64_t> seq{0};
};

struct server_ctx {
  mock_server_options opt;
  mock_profile profile;
  mock_stats stats;
};

std::string_view reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    default: return "Status";
  }
}

void append_head(std::string& out, int status, std::string_view content_type, int64_t content_length,
                 bool close, std::string_view extra = {}) {
  out += fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", status, reason(status), content_type);
  if (content_length >= 0) {
    out += "Content-Length: ";
    api::detail::append_int(out, content_length);
    out += "\r\n";
  } else {
    out += "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
  }
  if (close) out += "Connection: close\r\n";
  out += extra;
  out += "\r\n";
}

void append_chunked(std::string& out, std::string_view data) {
  out += fmt::format("{:x}\r\n", data.size());
  out += data;
  out += "\r\n";
}

std::string anthropic_error_json(std::string_view type, std::string_view msg) {
  std::string out = R"({"type":"error","error":{"type":)";
  api::append_json_string(out, type);
  out += R"(,"message":)";
  api::append_json_string(out, msg);
  out += "}}";
  return out;
}

std::string_view anthropic_error_type(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 529: return "overloaded_error";
    default: return "api_error";
  }
}

std::string openai_error_for_status(int status, std::string_view msg) {
  errc c = status == 429 ? errc::rate_limited
           : status == 404 ? errc::not_found
           : status == 401 ? errc::unauthorized
           : status == 413 ? errc::too_large
           : status < 500 ? errc::invalid_request
                          : errc::internal;
  return api::openai_error_json(make_error(c, std::string(msg), status));
}

// Reads x-mock-* headers over the body's "mock" object.
void apply_header_overrides(const http::request<http::string_body>& req, mock_overrides& o) {
  auto num = [&](std::string_view name) -> std::optional<double> {
    auto it = req.find(name);
    if (it == req.end()) return std::nullopt;
    try {
      return std::stod(std::string(it->value()));
    } catch (const std::exception&) {
      return std::nullopt;  // a malformed test header is ignored
    }
  };
  if (auto v = num("x-mock-ttft-ms")) o.ttft_ms = *v;
  if (auto v = num("x-mock-itl-ms")) o.itl_ms = *v;
  if (auto v = num("x-mock-output-tokens")) o.output_tokens = static_cast<int64_t>(*v);
  if (auto v = num("x-mock-error-status")) o.error_status = static_cast<int>(*v);
  if (auto v = num("x-mock-error-after")) o.error_after = static_cast<int64_t>(*v);
  if (auto v = num("x-mock-stall-after")) o.stall_after = static_cast<int64_t>(*v);
  if (auto v = num("x-mock-stall-ms")) o.stall_ms = *v;
  if (auto v = num("x-mock-disconnect-after")) o.disconnect_after = static_cast<int64_t>(*v);
  if (auto v = num("x-mock-tool-call")) o.tool_call = *v != 0;
  if (auto v = num("x-mock-echo")) o.echo = *v != 0;
}

// The text of Anthropic content (string or blocks; tool_result contents included).
void anthropic_text(std::string& out, const json::value* c) {
  if (!c) return;
  if (c->is_string()) {
    if (!out.empty()) out.push_back('\n');
    out += api::detail::sv(c->get_string());
    return;
  }
  if (!c->is_array()) return;
  for (const auto& b : c->get_array()) {
    if (!b.is_object()) continue;
    const auto& bo = b.get_object();
    auto t = api::detail::member_string(bo, "type");
    if (t == "text") {
      if (!out.empty()) out.push_back('\n');
      out += api::detail::member_string(bo, "text");
    } else if (t == "tool_result") {
      anthropic_text(out, bo.if_contains("content"));
    }
  }
}

struct anthropic_req {
  json::object body;
  std::string model;
  bool stream = false;
};

result<anthropic_req> parse_anthropic(std::string_view text, mock_request_view& v, std::string& prompt,
                                      std::string& last_user) {
  auto parsed = api::detail::parse_json(text, "The request body");
  if (!parsed) return parsed.error();
  if (!parsed->is_object()) return make_error(errc::invalid_request, "The request body must be a JSON object.");
  anthropic_req r;
  r.body = std::move(parsed->get_object());
  const auto& b = r.body;
  auto* model = b.if_contains("model");
  if (!model || !model->is_string()) return make_error(errc::invalid_request, "model: Field required");
  r.model = api::detail::sv(model->get_string());
  auto* mt = b.if_contains("max_tokens");
  if (!mt) return make_error(errc::invalid_request, "max_tokens: Field required");
  auto mti = api::detail::as_integer(*mt);
  if (!mti || *mti < 1) return make_error(errc::invalid_request, "max_tokens: Input should be a valid integer >= 1");
  v.max_tokens = *mti;
  auto* msgs = b.if_contains("messages");
  if (!msgs || !msgs->is_array()) return make_error(errc::invalid_request, "messages: Field required");
  if (auto* st = b.if_contains("stream"); st && st->is_bool()) r.stream = st->get_bool();
  anthropic_text(prompt, b.if_contains("system"));
  for (const auto& mv : msgs->get_array()) {
    if (!mv.is_object()) return make_error(errc::invalid_request, "messages: Input should be a valid list of objects");
    const auto& m = mv.get_object();
    auto role = api::detail::member_string(m, "role");
    if (role != "user" && role != "assistant") {
      return make_error(errc::invalid_request, "messages: role must be 'user' or 'assistant'");
    }
    anthropic_text(prompt, m.if_contains("content"));
    if (role == "user") {
      last_user.clear();
      anthropic_text(last_user, m.if_contains("content"));
    }
  }
  if (auto* tools = b.if_contains("tools"); tools && tools->is_array() && !tools->get_array().empty()) {
    v.has_tools = true;
    if (tools->get_array()[0].is_object()) v.first_tool_name = api::detail::member_string(tools->get_array()[0].get_object(), "name");
  }
  if (auto* tc = b.if_contains("tool_choice"); tc && tc->is_object()) {
    auto t = api::detail::member_string(tc->get_object(), "type");
    v.tool_choice_forces = t == "any" || t == "tool";
    v.tool_choice_none = t == "none";
    if (t == "tool") v.first_tool_name = api::detail::member_string(tc->get_object(), "name");
  }
  v.prompt_text = prompt;
  v.last_user_text = last_user;
  return r;
}

// ---- one response being played ------------------------------------------------------------------

class player {
 public:
  player(tcp::socket& s) : sock_(s), timer_(s.get_executor()) {}
  std::string out;
  bool chunked = false;

  void event(std::string_view sse) {
    if (chunked) {
      append_chunked(out, sse);
    } else {
      out += sse;
    }
  }
  asio::awaitable<bool> flush() {
    if (out.empty()) co_return true;
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(out), as_tuple(use_awaitable));
    out.clear();
    co_return !ec;
  }
  // Flushes, then waits ns. false: the client went away or we were cancelled.
  asio::awaitable<bool> wait(int64_t ns) {
    if (ns <= 0) co_return true;
    if (!co_await flush()) co_return false;
    timer_.expires_after(std::chrono::nanoseconds(ns));
    auto [ec] = co_await timer_.async_wait(as_tuple(use_awaitable));
    co_return !ec;
  }

 private:
  tcp::socket& sock_;
  asio::steady_timer timer_;
};

enum class play_result { done, client_gone, dropped, failed };

std::string sse_event(std::string_view name, std::string_view data) {
  std::string s;
  s.reserve(name.size() + data.size() + 16);
  if (!name.empty()) {
    s += "event: ";
    s += name;
    s += "\n";
  }
  s += "data: ";
  s += data;
  s += "\n\n";
  return s;
}

// OpenAI streaming or non-streaming answer.
asio::awaitable<play_result> play_openai(player& p, const mock_plan& plan, const api::chunk_meta& meta, bool chat,
                                         bool stream, bool include_usage, bool close) {
  const int64_t n = static_cast<int64_t>(plan.tokens.size());
  api::usage u{plan.prompt_tokens, n, 0};
  if (!stream) {
    if (!co_await p.wait(plan.total_ns())) co_return play_result::client_gone;
    if (plan.error_after >= 0) {
      auto body = openai_error_for_status(500, "The server had an error while processing your request.");
      append_head(p.out, 500, "application/json", static_cast<int64_t>(body.size()), close);
      p.out += body;
      {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
    }
    std::string body;
    if (!chat) {
      std::string text;
      for (const auto& t : plan.tokens) text += t;
      body = api::make_completion_response_json(meta, text, plan.finish, u);
    } else if (plan.tool_call) {
      api::tool_call tc{plan.tool_id, plan.tool_name, plan.tool_arguments};
      body = api::make_chat_response_json(meta, "", std::span<const api::tool_call>(&tc, 1), plan.finish, u);
    } else {
      std::string text;
      for (const auto& t : plan.tokens) text += t;
      body = api::make_chat_response_json(meta, text, {}, plan.finish, u);
    }
    append_head(p.out, 200, "application/json", static_cast<int64_t>(body.size()), close);
    p.out += body;
    {
    bool ok = co_await p.flush();
    co_return ok ? play_result::done : play_result::client_gone;
  }
  }
  if (!co_await p.wait(plan.ttft_ns)) co_return play_result::client_gone;
  append_head(p.out, 200, "text/event-stream; charset=utf-8", -1, close);
  p.chunked = true;
  std::string line;
  auto emit = [&](std::string_view json) {
    line.clear();
    api::append_sse_data(line, json);
    p.event(line);
  };
  if (chat) {
    api::chunk_delta d;
    d.role = "assistant";
    d.content = "";
    emit(api::make_chat_chunk_json(meta, d));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (i == plan.disconnect_after) {
      (void)co_await p.flush();
      co_return play_result::dropped;
    }
    if (i == plan.error_after) {
      emit(openai_error_for_status(500, "The server had an error while processing your request."));
      p.event("");
      {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
    }
    if (i == plan.stall_after && !co_await p.wait(plan.stall_ns)) co_return play_result::client_gone;
    if (i > 0 && !co_await p.wait(plan.gaps_ns[i - 1])) co_return play_result::client_gone;
    if (!chat) {
      emit(api::make_completion_chunk_json(meta, plan.tokens[i], api::finish_reason::none));
    } else if (plan.tool_call) {
      api::tool_call_delta td{0, i == 0 ? std::string_view(plan.tool_id) : std::string_view{},
                              i == 0 ? std::string_view(plan.tool_name) : std::string_view{}, plan.tokens[i]};
      api::chunk_delta d;
      d.tool_calls = std::span<const api::tool_call_delta>(&td, 1);
      emit(api::make_chat_chunk_json(meta, d));
    } else {
      api::chunk_delta d;
      d.content = plan.tokens[i];
      emit(api::make_chat_chunk_json(meta, d));
    }
  }
  if (plan.disconnect_after >= n) {
    (void)co_await p.flush();
    co_return play_result::dropped;
  }
  if (plan.error_after >= n) {
    emit(openai_error_for_status(500, "The server had an error while processing your request."));
    p.event("");
    {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
  }
  if (chat) {
    api::chunk_delta d;
    d.finish = plan.finish;
    emit(api::make_chat_chunk_json(meta, d));
  } else {
    emit(api::make_completion_chunk_json(meta, "", plan.finish));
  }
  if (include_usage) {
    emit(api::make_usage_chunk_json(meta, u, chat ? api::endpoint::chat_completions : api::endpoint::completions));
  }
  p.event(api::sse_done);
  p.event("");  // the terminating zero-length chunk
  {
    bool ok = co_await p.flush();
    co_return ok ? play_result::done : play_result::client_gone;
  }
}

std::string anthropic_message_json(const mock_plan& plan, std::string_view id, std::string_view model) {
  std::string out = R"({"id":)";
  api::append_json_string(out, id);
  out += R"(,"type":"message","role":"assistant","model":)";
  api::append_json_string(out, model);
  out += R"(,"content":[)";
  if (plan.tool_call) {
    out += R"({"type":"tool_use","id":)";
    api::append_json_string(out, plan.tool_id);
    out += R"(,"name":)";
    api::append_json_string(out, plan.tool_name);
    out += R"(,"input":)";
    out += plan.tool_arguments;
    out += "}";
  } else {
    std::string text;
    for (const auto& t : plan.tokens) text += t;
    out += R"({"type":"text","text":)";
    api::append_json_string(out, text);
    out += "}";
  }
  out += R"(],"stop_reason":)";
  out += plan.tool_call ? R"("tool_use")" : plan.finish == api::finish_reason::length ? R"("max_tokens")" : R"("end_turn")";
  out += R"(,"stop_sequence":null,"usage":{"input_tokens":)";
  api::detail::append_int(out, plan.prompt_tokens);
  out += R"(,"output_tokens":)";
  api::detail::append_int(out, static_cast<int64_t>(plan.tokens.size()));
  out += "}}";
  return out;
}

asio::awaitable<play_result> play_anthropic(player& p, const mock_plan& plan, std::string_view id,
                                            std::string_view model, bool stream, bool close) {
  const int64_t n = static_cast<int64_t>(plan.tokens.size());
  if (!stream) {
    if (!co_await p.wait(plan.total_ns())) co_return play_result::client_gone;
    if (plan.error_after >= 0) {
      auto body = anthropic_error_json("api_error", "Internal server error");
      append_head(p.out, 500, "application/json", static_cast<int64_t>(body.size()), close);
      p.out += body;
      {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
    }
    auto body = anthropic_message_json(plan, id, model);
    append_head(p.out, 200, "application/json", static_cast<int64_t>(body.size()), close);
    p.out += body;
    {
    bool ok = co_await p.flush();
    co_return ok ? play_result::done : play_result::client_gone;
  }
  }
  if (!co_await p.wait(plan.ttft_ns)) co_return play_result::client_gone;
  append_head(p.out, 200, "text/event-stream; charset=utf-8", -1, close);
  p.chunked = true;
  std::string d = R"({"type":"message_start","message":{"id":)";
  api::append_json_string(d, id);
  d += R"(,"type":"message","role":"assistant","model":)";
  api::append_json_string(d, model);
  d += R"(,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":)";
  api::detail::append_int(d, plan.prompt_tokens);
  d += R"(,"output_tokens":1}}})";
  p.event(sse_event("message_start", d));
  if (plan.tool_call) {
    d = R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":)";
    api::append_json_string(d, plan.tool_id);
    d += R"(,"name":)";
    api::append_json_string(d, plan.tool_name);
    d += R"(,"input":{}}})";
  } else {
    d = R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})";
  }
  p.event(sse_event("content_block_start", d));
  p.event(sse_event("ping", R"({"type": "ping"})"));
  for (int64_t i = 0; i < n; ++i) {
    if (i == plan.disconnect_after) {
      (void)co_await p.flush();
      co_return play_result::dropped;
    }
    if (i == plan.error_after) {
      p.event(sse_event("error", anthropic_error_json("overloaded_error", "Overloaded")));
      p.event("");
      {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
    }
    if (i == plan.stall_after && !co_await p.wait(plan.stall_ns)) co_return play_result::client_gone;
    if (i > 0 && !co_await p.wait(plan.gaps_ns[i - 1])) co_return play_result::client_gone;
    if (plan.tool_call) {
      d = R"({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":)";
    } else {
      d = R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":)";
    }
    api::append_json_string(d, plan.tokens[i]);
    d += "}}";
    p.event(sse_event("content_block_delta", d));
  }
  if (plan.disconnect_after >= n) {
    (void)co_await p.flush();
    co_return play_result::dropped;
  }
  if (plan.error_after >= n) {
    p.event(sse_event("error", anthropic_error_json("overloaded_error", "Overloaded")));
    p.event("");
    {
      bool ok = co_await p.flush();
      co_return ok ? play_result::failed : play_result::client_gone;
    }
  }
  p.event(sse_event("content_block_stop", R"({"type":"content_block_stop","index":0})"));
  d = R"({"type":"message_delta","delta":{"stop_reason":)";
  d += plan.tool_call ? R"("tool_use")" : plan.finish == api::finish_reason::length ? R"("max_tokens")" : R"("end_turn")";
  d += R"(,"stop_sequence":null},"usage":{"output_tokens":)";
  api::detail::append_int(d, n);
  d += "}}";
  p.event(sse_event("message_delta", d));
  p.event(sse_event("message_stop", R"({"type":"message_stop"})"));
  p.event("");
  {
    bool ok = co_await p.flush();
    co_return ok ? play_result::done : play_result::client_gone;
  }
}

// ---- connection ---------------------------------------------------------------------------------

asio::awaitable<bool> write_simple(tcp::socket& sock, int status, std::string_view body, bool close,
                                   std::string_view extra = {}) {
  std::string out;
  append_head(out, status, "application/json", static_cast<int64_t>(body.size()), close, extra);
  out += body;
  auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), as_tuple(use_awaitable));
  co_return !ec;
}

// POST /v1/embeddings: deterministic bag-of-words vectors (no model), so embedding clients can be
// tested: each lower-cased word (weight 1) and character trigram of " word " (weight 0.5) is
// hashed (FNV-1a 64) to a dimension and a sign; the sum is L2-normalised. `input` is a string or
// an array of strings; `dimensions` (default 256, at most 4096) sets the size.
std::string mock_embeddings(std::string_view body, int& status) {
  status = 400;
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object())
    return api::openai_error_json(make_error(errc::invalid_request, "We could not parse the JSON body of your request."));
  auto& o = v.as_object();
  std::vector<std::string> inputs;
  if (auto* in = o.if_contains("input")) {
    if (in->is_string()) inputs.emplace_back(in->as_string());
    else if (in->is_array())
      for (auto& x : in->as_array())
        if (x.is_string()) inputs.emplace_back(x.as_string());
  }
  if (inputs.empty()) return api::openai_error_json(make_error(errc::invalid_request, "'input' is required"));
  int64_t dim = 256;
  if (auto* d = o.if_contains("dimensions"); d && d->is_int64()) dim = d->as_int64();
  if (auto* d = o.if_contains("dimensions"); d && d->is_uint64()) dim = static_cast<int64_t>(d->as_uint64());
  if (dim < 1 || dim > 4096) return api::openai_error_json(make_error(errc::invalid_request, "'dimensions' must be in [1, 4096]"));
  auto fnv = [](std::string_view t) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : t) h = (h ^ c) * 1099511628211ull;
    return h;
  };
  boost::json::array data;
  int64_t tokens = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    std::vector<double> acc(static_cast<size_t>(dim), 0.0);
    auto add = [&](std::string_view f, double w) {
      uint64_t h = fnv(f);
      acc[h % static_cast<uint64_t>(dim)] += (h >> 63) ? -w : w;
    };
    std::string word;
    auto flush = [&] {
      if (word.empty()) return;
      ++tokens;
      add(word, 1.0);
      std::string padded = " " + word + " ";
      for (size_t j = 0; j + 3 <= padded.size(); ++j) add(std::string_view(padded).substr(j, 3), 0.5);
      word.clear();
    };
    for (unsigned char c : inputs[i]) {
      if (std::isalnum(c)) word.push_back(static_cast<char>(std::tolower(c)));
      else flush();
    }
    flush();
    double n = 0;
    for (double x : acc) n += x * x;
    n = n > 0 ? std::sqrt(n) : 1.0;
    boost::json::array e;
    e.reserve(acc.size());
    for (double x : acc) e.push_back(x / n);
    data.push_back(boost::json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(e)}});
  }
  status = 200;
  std::string model = o.contains("model") && o.at("model").is_string() ? std::string(o.at("model").as_string()) : "mock-embedding";
  return boost::json::serialize(boost::json::object{{"object", "list"}, {"data", std::move(data)}, {"model", model},
                                                    {"usage", boost::json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
}

std::string stats_json(const mock_stats& s) {
  return fmt::format(
      R"({{"requests":{},"active":{},"completed":{},"cancelled":{},"errors":{},"last_cancel_mono_ns":{},"last_cancel_unix_ms":{},"auth_bearer":{},"auth_x_api_key":{}}})",
      s.requests.load(), s.active.load(), s.completed.load(), s.cancelled.load(), s.errors.load(),
      s.last_cancel_mono_ns.load(), s.last_cancel_unix_ms.load(), s.auth_bearer.load(), s.auth_x_api_key.load());
}

std::string models_json(const server_ctx& ctx) {
  if (ctx.opt.format == api::wire_format::anthropic) {
    return R"({"data":[{"type":"model","id":"claude-3-haiku-20240307","display_name":"Claude Haiku 3","created_at":"2024-03-07T00:00:00Z"}],"has_more":false,"first_id":"claude-3-haiku-20240307","last_id":"claude-3-haiku-20240307"})";
  }
  std::string out = R"({"object":"list","data":[)";
  bool first = true;
  for (const auto& n : {"gpt-4o", "gpt-4o-mini", "mock"}) {
    if (!first) out += ",";
    first = false;
    out += fmt::format(R"({{"id":"{}","object":"model","created":1715367049,"owned_by":"system"}})", n);
  }
  out += "]}";
  return out;
}

// Waits until the peer closes (or errors); returns then. Cancelled when the response completes.
asio::awaitable<void> watch_peer(tcp::socket& sock) {
  char b[512];
  for (;;) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(b), as_tuple(use_awaitable));
    if (ec) co_return;
  }
}

// Handles one completion request; returns whether the connection can be reused.
asio::awaitable<bool> handle_completion(tcp::socket& sock, const http::request<http::string_body>& req,
                                        server_ctx& ctx, bool close) {
  auto& st = ctx.stats;
  const bool anthropic = ctx.opt.format == api::wire_format::anthropic;
  st.requests.fetch_add(1, std::memory_order_relaxed);
  if (req.find(http::field::authorization) != req.end()) st.auth_bearer.fetch_add(1, std::memory_order_relaxed);
  if (req.find("x-api-key") != req.end()) st.auth_x_api_key.fetch_add(1, std::memory_order_relaxed);
  struct active_guard {
    std::atomic<uint64_t>& a;
    explicit active_guard(std::atomic<uint64_t>& x) : a(x) { a.fetch_add(1); }
    ~active_guard() { a.fetch_sub(1); }
  } guard(st.active);

  std::string prompt, last_user;
  mock_request_view view;
  const json::object* body = nullptr;
  std::optional<api::request> oreq;
  std::optional<anthropic_req> areq;
  bool chat = req.target() == "/v1/chat/completions";
  auto fail = [&](int status, std::string_view msg) -> asio::awaitable<bool> {
    st.errors.fetch_add(1, std::memory_order_relaxed);
    std::string extra = status == 429 ? "Retry-After: 1\r\n" : "";
    if (status == 429 && anthropic) extra += "anthropic-ratelimit-requests-remaining: 0\r\n";
    // (Bodies go into locals first: GCC 12 double-destroys temporaries of a ?: inside co_await.)
    std::string body = anthropic ? anthropic_error_json(anthropic_error_type(status), msg)
                                 : openai_error_for_status(status, msg);
    bool ok = co_await write_simple(sock, status, body, close, extra);
    co_return ok && !close;
  };
  if (anthropic) {
    auto r = parse_anthropic(req.body(), view, prompt, last_user);
    if (!r) co_return co_await fail(400, r.error().message);
    areq = std::move(*r);
    body = &areq->body;
  } else {
    auto r = api::parse_openai_request(req.body(), chat ? api::endpoint::chat_completions : api::endpoint::completions);
    if (!r) co_return co_await fail(400, r.error().message);
    oreq = std::move(*r);
    body = &oreq->body();
    view = mock_view_of_openai(*oreq, prompt, last_user);
  }
  auto ov = mock_overrides_from_body(*body);
  if (!ov) co_return co_await fail(400, ov.error().message);
  apply_header_overrides(req, *ov);
  uint64_t seq = st.seq.fetch_add(1, std::memory_order_relaxed);
  auto plan = make_mock_plan(ctx.profile, ctx.opt.seed, seq, view, *ov);
  if (plan.error_status) {
    std::string_view msg = plan.error_status == 429   ? "Rate limit reached for requests"
                           : plan.error_status == 529 ? "Overloaded"
                           : plan.error_status >= 500 ? "The server had an error while processing your request."
                                                      : "Injected error";
    co_return co_await fail(plan.error_status, msg);
  }

  player p(sock);
  play_result res;
  auto play = [&]() -> asio::awaitable<play_result> {
    if (anthropic) {
      std::string id = fmt::format("msg_mock{:08x}", seq);
      if (plan.tool_call) plan.tool_id = "toolu_" + plan.tool_id.substr(5);  // Anthropic's id style
      co_return co_await play_anthropic(p, plan, id, areq->model, areq->stream, close);
    }
    api::chunk_meta meta;
    meta.id = fmt::format("{}-mock{}", chat ? "chatcmpl" : "cmpl", seq);
    meta.created = system_clock::instance().wall_ms() / 1000;
    meta.model = oreq->model;
    meta.system_fingerprint = "fp_mock";
    co_return co_await play_openai(p, plan, meta, chat, oreq->stream, oreq->include_usage, close);
  };
  if (plan.total_ns() > 0) {
    // Something waits: watch the client so a disconnect is noticed (and counted) at once.
    auto v = co_await (play() || watch_peer(sock));
    res = v.index() == 0 ? std::get<0>(v) : play_result::client_gone;
  } else {
    res = co_await play();
  }
  switch (res) {
    case play_result::done: st.completed.fetch_add(1, std::memory_order_relaxed); co_return !close;
    case play_result::client_gone:
      st.last_cancel_mono_ns.store(now_ns());
      st.last_cancel_unix_ms.store(system_clock::instance().wall_ms());
      st.cancelled.fetch_add(1, std::memory_order_relaxed);
      co_return false;
    case play_result::dropped:
    case play_result::failed: st.errors.fetch_add(1, std::memory_order_relaxed); co_return false;
  }
  co_return false;
}

// GET /mock/stats?wait_cancelled=N&wait_completed=M&wait_requests=K: long-poll (up to 10 s) until
// the counters reach the given values, so tests synchronise on events instead of sleeping.
asio::awaitable<void> wait_for_counters(tcp::socket& sock, const http::request<http::string_body>& req,
                                        const mock_stats& st) {
  std::string_view t(req.target().data(), req.target().size());
  auto param = [&](std::string_view name) -> uint64_t {
    auto pos = t.find(name);
    if (pos == std::string_view::npos || pos + name.size() >= t.size() || t[pos + name.size()] != '=') return 0;
    return std::strtoull(std::string(t.substr(pos + name.size() + 1)).c_str(), nullptr, 10);
  };
  uint64_t want_cancelled = param("wait_cancelled"), want_completed = param("wait_completed"),
           want_requests = param("wait_requests");
  asio::steady_timer timer(sock.get_executor());
  for (int i = 0; i < 10000; ++i) {
    if (st.cancelled.load() >= want_cancelled && st.completed.load() >= want_completed &&
        st.requests.load() >= want_requests) {
      co_return;
    }
    timer.expires_after(std::chrono::milliseconds(1));
    auto [ec] = co_await timer.async_wait(as_tuple(use_awaitable));
    if (ec) co_return;
  }
}

asio::awaitable<void> session(tcp::socket sock, server_ctx& ctx) {
  boost::system::error_code ignored;
  sock.set_option(tcp::no_delay(true), ignored);
  beast::flat_buffer buf;
  const bool anthropic = ctx.opt.format == api::wire_format::anthropic;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(ctx.opt.max_body_bytes);
    parser.header_limit(64 * 1024);
    auto [ec, n] = co_await http::async_read(sock, buf, parser, as_tuple(use_awaitable));
    if (ec == http::error::body_limit) {
      auto msg = "Request body too large";
      std::string body = anthropic ? anthropic_error_json("request_too_large", msg) : openai_error_for_status(413, msg);
      (void)co_await write_simple(sock, 413, body, true);
      break;
    }
    if (ec) break;
    auto& req = parser.get();
    bool close = !req.keep_alive();
    std::string_view target(req.target().data(), req.target().size());
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    bool keep = true;
    if (req.method() == http::verb::get && target == "/mock/stats") {
      co_await wait_for_counters(sock, req, ctx.stats);
      std::string body = stats_json(ctx.stats);
      keep = co_await write_simple(sock, 200, body, close);
    } else if (req.method() == http::verb::post && target == "/mock/reset") {
      auto& s = ctx.stats;
      s.requests = 0, s.completed = 0, s.cancelled = 0, s.errors = 0, s.auth_bearer = 0, s.auth_x_api_key = 0;
      s.last_cancel_mono_ns = -1, s.last_cancel_unix_ms = -1;
      std::string body = stats_json(ctx.stats);
      keep = co_await write_simple(sock, 200, body, close);
    } else if (req.method() == http::verb::get && (target == "/health" || target == "/mock/health")) {
      keep = co_await write_simple(sock, 200, R"({"status":"ok"})", close);
    } else if (req.method() == http::verb::get && target == "/v1/models") {
      std::string body = models_json(ctx);
      keep = co_await write_simple(sock, 200, body, close);
    } else if (req.method() == http::verb::post && !anthropic && target == "/v1/embeddings") {
      int status = 200;
      std::string body = mock_embeddings(req.body(), status);
      keep = co_await write_simple(sock, status, body, close);
    } else if (req.method() == http::verb::post &&
               ((!anthropic && (target == "/v1/chat/completions" || target == "/v1/completions")) ||
                (anthropic && target == "/v1/messages"))) {
      keep = co_await handle_completion(sock, req, ctx, close);
    } else {
      auto msg = fmt::format("Unknown request URL: {} {}. Please check the URL for typos.",
                             std::string_view(req.method_string().data(), req.method_string().size()), target);
      std::string body = anthropic ? anthropic_error_json("not_found_error", msg)
                                   : api::openai_error_json(make_error(errc::invalid_request, msg, 404));
      keep = co_await write_simple(sock, 404, body, close);
    }
    if (!keep || close) break;
  }
  sock.shutdown(tcp::socket::shutdown_send, ignored);
  sock.close(ignored);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acc, server_ctx& ctx) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(as_tuple(use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // e.g. EMFILE: keep serving the connections we have
    }
    asio::co_spawn(acc.get_executor(), session(std::move(sock), ctx), asio::detached);
  }
}

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

tcp::acceptor make_acceptor(asio::io_context& io, const tcp::endpoint& ep) {
  tcp::acceptor acc(io);
  acc.open(ep.protocol());
  acc.set_option(asio::socket_base::reuse_address(true));
  acc.set_option(reuse_port(true));
  acc.bind(ep);
  acc.listen(asio::socket_base::max_listen_connections);
  return acc;
}

}  // namespace

int run_mock_server(const mock_server_options& o) {
  auto prof = find_mock_profile(o.profile);
  if (!prof) {
    std::fprintf(stderr, "fastpath mock: %s\n", prof.error().message.c_str());
    return 2;
  }
  auto ctx = std::make_unique<server_ctx>();
  ctx->opt = o;
  ctx->profile = *prof;
  int threads = std::max(1, o.threads);
  std::vector<std::unique_ptr<asio::io_context>> ios;
  std::vector<tcp::acceptor> accs;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec) {
    std::fprintf(stderr, "fastpath mock: --host: invalid address '%s'\n", o.host.c_str());
    return 2;
  }
  tcp::endpoint ep(addr, o.port);
  try {
    for (int i = 0; i < threads; ++i) {
      ios.push_back(std::make_unique<asio::io_context>(1));
      accs.push_back(make_acceptor(*ios.back(), ep));
      if (i == 0) ep.port(accs.back().local_endpoint().port());
    }
  } catch (const boost::system::system_error& e) {
    std::fprintf(stderr, "fastpath mock: cannot listen on %s:%u: %s\n", o.host.c_str(), ep.port(), e.what());
    return 1;
  }
  std::printf("listening %s:%u\n", o.host.c_str(), static_cast<unsigned>(ep.port()));
  std::fflush(stdout);
  for (int i = 0; i < threads; ++i) asio::co_spawn(*ios[i], accept_loop(accs[i], *ctx), asio::detached);
  asio::signal_set sigs(*ios[0], SIGINT, SIGTERM);
  sigs.async_wait([&](const boost::system::error_code&, int) {
    for (auto& io : ios) io->stop();
  });
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back([&, i] { ios[i]->run(); });
  ios[0]->run();
  for (auto& io : ios) io->stop();
  for (auto& t : ts) t.join();
  return 0;
}

}  // namespace fp::providers
