// Test helpers: start `fastpath mock` as a child process on port 0, and a tiny blocking HTTP/1.1
// client (POSIX sockets, chunked decoding) for talking to it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace fp::test {

class child_server {
 public:
  // Runs FASTPATH_BINARY with args; waits for "listening HOST:PORT" on its first stdout line.
  explicit child_server(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      std::string bin = FASTPATH_BINARY;
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
    char line[256] = {0};
    if (out_ && fgets(line, sizeof line, out_)) {
      first_line_ = line;
      if (auto c = first_line_.rfind(':'); c != std::string::npos) port_ = std::atoi(first_line_.c_str() + c + 1);
    }
  }
  ~child_server() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (out_) fclose(out_);
  }
  int port() const { return port_; }
  const std::string& first_line() const { return first_line_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int port_ = 0;
  std::string first_line_;
};

inline int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

inline std::string build_request(std::string_view method, std::string_view path, std::string_view body,
                                 const std::vector<std::string>& headers = {}, bool close_conn = true) {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  if (close_conn) r += "Connection: close\r\n";
  for (auto& h : headers) r += h + "\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "\r\n";
  r += body;
  return r;
}

inline bool send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    s.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

struct http_response {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
  bool chunked = false;
  bool complete = false;  // chunked: the terminating chunk arrived; else Content-Length satisfied
};

// Parses a full raw response (read until EOF).
inline http_response parse_response(const std::string& raw) {
  http_response r;
  auto he = raw.find("\r\n\r\n");
  if (he == std::string::npos) return r;
  std::string head = raw.substr(0, he);
  r.status = std::atoi(head.c_str() + 9);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos < head.size()) {
    size_t next = head.find("\r\n", pos + 2);
    std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    if (auto c = line.find(':'); c != std::string::npos) {
      std::string k = line.substr(0, c);
      for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string v = line.substr(c + 1);
      while (!v.empty() && v[0] == ' ') v.erase(0, 1);
      r.headers[k] = v;
    }
    pos = next;
  }
  std::string rest = raw.substr(he + 4);
  if (r.headers["transfer-encoding"] == "chunked") {
    r.chunked = true;
    size_t p = 0;
    while (p < rest.size()) {
      auto le = rest.find("\r\n", p);
      if (le == std::string::npos) break;
      size_t n = std::strtoul(rest.c_str() + p, nullptr, 16);
      if (n == 0) {
        r.complete = true;
        break;
      }
      if (le + 2 + n > rest.size()) break;
      r.body.append(rest, le + 2, n);
      p = le + 2 + n + 2;
    }
  } else {
    r.body = rest;
    r.complete = r.headers.count("content-length") && std::stoul(r.headers["content-length"]) == rest.size();
  }
  return r;
}

// One request on a fresh connection (Connection: close), reading until EOF.
inline http_response request(int port, std::string_view method, std::string_view path, std::string_view body = {},
                             const std::vector<std::string>& headers = {}) {
  int fd = connect_to(port);
  if (fd < 0) return {};
  send_all(fd, build_request(method, path, body, headers));
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return parse_response(raw);
}

}  // namespace fp::test
