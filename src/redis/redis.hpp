// Public header of src/redis (fp_redis): a small Redis client for the whole project.
//
// - A pool of connections (TCP or unix socket) owned by the client, all served by one private I/O
//   thread, so the client is safe to call from any thread and any executor: each call hops to the
//   client's thread and resumes on the caller's executor.
// - Commands on one connection are pipelined (many in flight, replies matched in order).
// - Every command has a deadline; a connection that fails or times out is closed, its pending
//   commands fail with an error, and the next command reconnects (after a short backoff during
//   which commands fail fast, so a dead Redis never slows callers down).
// - EVALSHA with a transparent EVAL fallback on NOSCRIPT (for the rate limiter's Lua scripts).
// - Replies are parsed with hiredis's RESP reader (resp_parser below, also fuzzed).
// Asio stays out of this header (only the light awaitable type).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/common.hpp"

namespace fp::redis {

// One RESP reply.
struct reply {
  enum class kind { nil, string, status, error, integer, array };
  kind type = kind::nil;
  std::string str;  // string / status / error text
  int64_t integer = 0;
  std::vector<reply> elements;  // array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
};

// Incremental RESP parser (hiredis's reader). Feed any byte split; pull complete replies.
class resp_parser {
 public:
  resp_parser();
  ~resp_parser();
  resp_parser(const resp_parser&) = delete;
  resp_parser& operator=(const resp_parser&) = delete;
  // Appends bytes. False once the stream is malformed (the parser is then dead).
  bool feed(std::string_view bytes);
  // 1: a reply was moved into out; 0: need more bytes; -1: protocol error.
  int next(reply& out);

 private:
  void* reader_;  // redisReader*
  bool failed_ = false;
};

// Appends one command in RESP (array of bulk strings) to out.
void append_command(std::string& out, const std::vector<std::string>& args);

struct config {
  std::string host = "127.0.0.1";
  uint16_t port = 6379;
  std::string unix_socket;  // when set, used instead of host:port
  std::string password;     // AUTH on connect when set (never logged)
  int db = 0;               // SELECT on connect when not 0
  size_t pool_size = 2;     // connections
  std::chrono::milliseconds connect_timeout{250};
  std::chrono::milliseconds command_timeout{250};
  std::chrono::milliseconds reconnect_backoff{200};  // after a failure, fail fast this long
  size_t max_reply_bytes = 64 << 20;
};

// Parses "redis://[:password@]host[:port][/db]" or "unix:///path/to.sock" into cfg fields.
result<void> parse_url(std::string_view url, config& cfg);

struct client_stats {
  uint64_t commands = 0;
  uint64_t errors = 0;       // I/O errors, timeouts, connect failures (not Redis error replies)
  uint64_t timeouts = 0;
  uint64_t reconnects = 0;   // successful connects
};

class client {
 public:
  explicit client(config cfg);
  ~client();  // stops the I/O thread; pending commands fail
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  // One command. A Redis error reply is a reply (type error), not an fp::error; fp::error means
  // I/O failure, timeout or the client being stopped (errc::io_error / upstream_timeout).
  boost::asio::awaitable<result<reply>> command(std::vector<std::string> args);
  // Several commands written at once on one connection; replies in order.
  boost::asio::awaitable<result<std::vector<reply>>> pipeline(std::vector<std::vector<std::string>> cmds);
  // EVALSHA sha1(script) numkeys keys... args..., falling back to EVAL when Redis answers NOSCRIPT.
  boost::asio::awaitable<result<reply>> eval(std::string_view script, std::vector<std::string> keys,
                                             std::vector<std::string> args);

  client_stats stats() const noexcept;
  const config& cfg() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

// Lower-case hex SHA-1 of a script (what EVALSHA takes).
std::string script_sha1(std::string_view script);

}  // namespace fp::redis
