// Public header of src/common: error/result types, the injectable clock, logging.
#pragma once

#include <boost/system/result.hpp>

#include <atomic>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace fp {

// ---- errors -------------------------------------------------------------------------------------
// What went wrong, in terms a caller can act on. Maps onto the OpenAI error object at the edge.
enum class errc {
  ok = 0,
  invalid_request,   // 400: malformed JSON, bad field
  unauthorized,      // 401
  not_found,         // 404: unknown model, route
  too_large,         // 413: body over the limit
  rate_limited,      // 429
  upstream_error,    // upstream answered with an error status (passed through)
  upstream_unreachable,  // 502: connect/DNS/TLS failure
  upstream_timeout,  // 504
  cancelled,         // client went away
  io_error,          // local I/O (files, sockets)
  corrupt_data,      // a file or message that fails validation
  unsupported,       // a feature or format this build does not implement
  internal,          // 500: a bug
};

std::string_view errc_name(errc e) noexcept;
int errc_http_status(errc e) noexcept;

struct error {
  errc code = errc::internal;
  std::string message;  // human-readable; never contains secrets
  int http_status = 0;  // 0: derive from code; else e.g. the upstream's status passed through

  int status() const noexcept { return http_status ? http_status : errc_http_status(code); }
};

inline error make_error(errc c, std::string msg, int http_status = 0) {
  return error{c, std::move(msg), http_status};
}

// Thrown only by result::value() on an error (start-up code); the data plane checks has_value().
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

template <class T>
using result = boost::system::result<T, error>;

// ---- text ---------------------------------------------------------------------------------------

// ASCII case-insensitive equality (HTTP header names, tokens).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// ---- clock --------------------------------------------------------------------------------------
// Injectable monotonic clock, in nanoseconds. Tests use fake_clock (tests/fakes) instead of sleeps.
class clock {
 public:
  virtual ~clock() = default;
  virtual int64_t now_ns() const noexcept = 0;  // monotonic
  virtual int64_t wall_ms() const noexcept = 0;  // unix epoch milliseconds
};

class system_clock final : public clock {
 public:
  int64_t now_ns() const noexcept override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t wall_ms() const noexcept override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static const system_clock& instance() noexcept;
};

inline int64_t now_ns() noexcept { return system_clock::instance().now_ns(); }

// ---- logging ------------------------------------------------------------------------------------
enum class log_level { debug = 0, info, warn, error, off };

void set_log_level(log_level l) noexcept;
log_level get_log_level() noexcept;
bool parse_log_level(std::string_view s, log_level& out) noexcept;
// One line to stderr: "<iso time> <level> <component>: <message>". Thread-safe.
void log(log_level l, std::string_view component, std::string_view message);
// Logs only the first time `once_flag` is seen set to false (degraded paths log once).
void log_once(std::atomic<bool>& once_flag, log_level l, std::string_view component, std::string_view message);
// Writes one raw line (e.g. a JSON access-log record) to the access log sink (stdout by default).
void write_access_line(std::string_view json_line);

}  // namespace fp
