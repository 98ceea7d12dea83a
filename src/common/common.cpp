#include "common/common.hpp"

#include <boost/throw_exception.hpp>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace fp {

std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::invalid_request: return "invalid_request_error";
    case errc::unauthorized: return "authentication_error";
    case errc::not_found: return "not_found_error";
    case errc::too_large: return "request_too_large";
    case errc::rate_limited: return "rate_limit_error";
    case errc::upstream_error: return "upstream_error";
    case errc::upstream_unreachable: return "upstream_unreachable";
    case errc::upstream_timeout: return "upstream_timeout";
    case errc::cancelled: return "cancelled";
    case errc::io_error: return "io_error";
    case errc::corrupt_data: return "corrupt_data";
    case errc::unsupported: return "unsupported";
    case errc::internal: return "internal_error";
  }
  return "internal_error";
}

int errc_http_status(errc e) noexcept {
  switch (e) {
    case errc::ok: return 200;
    case errc::invalid_request: return 400;
    case errc::unauthorized: return 401;
    case errc::not_found: return 404;
    case errc::too_large: return 413;
    case errc::rate_limited: return 429;
    case errc::upstream_error: return 502;
    case errc::upstream_unreachable: return 502;
    case errc::upstream_timeout: return 504;
    case errc::cancelled: return 499;
    case errc::unsupported: return 400;
    case errc::io_error:
    case errc::corrupt_data:
    case errc::internal: return 500;
  }
  return 500;
}

void throw_exception_from_error(const error& e, const boost::source_location& loc) {
  boost::throw_exception(std::runtime_error(std::string(errc_name(e.code)) + ": " + e.message), loc);
}

const system_clock& system_clock::instance() noexcept {
  static const system_clock c;
  return c;
}

namespace {
std::atomic<int> g_level{static_cast<int>(log_level::info)};
std::mutex g_log_mu;
const char* level_name(log_level l) {
  switch (l) {
    case log_level::debug: return "DEBUG";
    case log_level::info: return "INFO";
    case log_level::warn: return "WARN";
    case log_level::error: return "ERROR";
    case log_level::off: return "OFF";
  }
  return "?";
}
}  // namespace

void set_log_level(log_level l) noexcept { g_level.store(static_cast<int>(l)); }
log_level get_log_level() noexcept { return static_cast<log_level>(g_level.load()); }

bool parse_log_level(std::string_view s, log_level& out) noexcept {
  if (s == "debug") out = log_level::debug;
  else if (s == "info") out = log_level::info;
  else if (s == "warn") out = log_level::warn;
  else if (s == "error") out = log_level::error;
  else if (s == "off") out = log_level::off;
  else return false;
  return true;
}

void log(log_level l, std::string_view component, std::string_view message) {
  if (static_cast<int>(l) < g_level.load(std::memory_order_relaxed)) return;
  char ts[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::lock_guard lk(g_log_mu);
  std::fprintf(stderr, "%s %s %.*s: %.*s\n", ts, level_name(l), static_cast<int>(component.size()),
               component.data(), static_cast<int>(message.size()), message.data());
}

void log_once(std::atomic<bool>& once_flag, log_level l, std::string_view component, std::string_view message) {
  if (once_flag.exchange(true, std::memory_order_relaxed)) return;
  log(l, component, message);
}

void write_access_line(std::string_view json_line) {
  std::lock_guard lk(g_log_mu);
  std::fwrite(json_line.data(), 1, json_line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace fp
