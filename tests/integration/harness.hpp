// Integration-test helpers: run `fastpath mock` as a child process on port 0, and a tiny blocking
// HTTP/1.1 client written from scratch (so the gateway is checked by code that shares nothing with
// it). Everything targets 127.0.0.1.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <memory>
#include <vector>

#include "../fakes/process.hpp"

namespace fp::test {

inline void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

inline int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The binary that runs `fastpath mock`: FASTPATH_TEST_BINARY overrides the one of this build
// (e.g. a sanitizer build of the tests with a release binary as the mock).
inline const char* fastpath_binary() {
  const char* e = std::getenv("FASTPATH_TEST_BINARY");
  return e && *e ? e : FASTPATH_BINARY;
}

// `fastpath mock --port 0 ...` as a child (tests/fakes/process.hpp); the port comes from its
// first stdout line.
class mock_process {
 public:
  mock_process(const std::string& profile, const std::string& format) {
    const char* bin = fastpath_binary();
    if (!std::filesystem::exists(bin)) return;
    p_ = std::make_unique<child_process>(
        bin, std::vector<std::string>{"mock", "--host", "127.0.0.1", "--port", "0", "--profile", profile, "--format",
                                      format, "--threads", "1"});
    port_ = p_->wait_for_port(1);
  }
  uint16_t port() const { return port_; }
  bool ok() const { return port_ != 0; }

 private:
  std::unique_ptr<child_process> p_;
  uint16_t port_ = 0;
};

inline int dial(uint16_t port, int recv_timeout_s = 30) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{recv_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// A port nothing listens on (bound, then closed).
inline uint16_t dead_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

inline bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

inline std::string make_request(std::string_view method, std::string_view path, std::string_view body,
                                 const std::vector<std::pair<std::string, std::string>>& headers = {},
                                 bool close_conn = true) {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (close_conn) r += "Connection: close\r\n";
  r += "\r\n";
  r += body;
  return r;
}

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool chunked = false;
  bool complete = false;  // chunked terminator / full Content-Length seen
};

// Parses a raw HTTP/1.1 response (head + body as read until EOF).
inline reply parse_reply(const std::string& raw) {
  reply r;
  auto he = raw.find("\r\n\r\n");
  if (he == std::string::npos || raw.size() < 12) return r;
  r.status = std::atoi(raw.c_str() + 9);
  size_t pos = raw.find("\r\n") + 2;
  while (pos < he) {
    auto e = raw.find("\r\n", pos);
    auto line = raw.substr(pos, e - pos);
    auto c = line.find(':');
    if (c != std::string::npos) {
      std::string k = line.substr(0, c);
      for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string v = line.substr(c + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[k] = v;
    }
    pos = e + 2;
  }
  std::string_view b(raw);
  b.remove_prefix(he + 4);
  if (r.headers["transfer-encoding"] == "chunked") {
    r.chunked = true;
    for (;;) {
      auto e = b.find("\r\n");
      if (e == std::string_view::npos) break;
      size_t n = std::strtoul(std::string(b.substr(0, e)).c_str(), nullptr, 16);
      b.remove_prefix(e + 2);
      if (n == 0) {
        r.complete = true;
        break;
      }
      if (b.size() < n + 2) {
        r.body.append(b.substr(0, std::min(n, b.size())));
        break;
      }
      r.body.append(b.substr(0, n));
      b.remove_prefix(n + 2);
    }
  } else {
    r.body = std::string(b);
    auto cl = r.headers.find("content-length");
    r.complete = cl != r.headers.end() && std::to_string(r.body.size()) == cl->second;
  }
  return r;
}

inline std::string read_to_eof(int fd) {
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  return raw;
}

inline reply call(uint16_t port, std::string_view method, std::string_view path, std::string_view body = {},
                  const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  int fd = dial(port);
  if (fd < 0) return {};
  send_all(fd, make_request(method, path, body, headers));
  auto raw = read_to_eof(fd);
  close(fd);
  return parse_reply(raw);
}

// The `data:` payloads of an SSE body, in order.
inline std::vector<std::string> sse_data(std::string_view body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    auto e = body.find("\n\n", pos);
    if (e == std::string_view::npos) break;
    auto ev = body.substr(pos, e - pos);
    if (ev.starts_with("data: ")) out.emplace_back(ev.substr(6));
    pos = e + 2;
  }
  return out;
}

inline boost::json::value parse_json(std::string_view s) {
  boost::system::error_code ec;
  auto v = boost::json::parse(s, ec);
  return ec ? boost::json::value() : v;
}

}  // namespace fp::test
