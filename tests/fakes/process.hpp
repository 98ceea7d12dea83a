// A child process for tests: `fastpath mock`, `fastpath serve`, ... started with fork/exec, one of
// its output streams read until a "listening ...:PORT" line gives the port, the rest drained in
// the background (so a chatty child never blocks on a full pipe). It dies with the test
// (PR_SET_PDEATHSIG) and is stopped (SIGTERM, or kill(SIGKILL)) and reaped by the destructor.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace fp::test {

class child_process {
 public:
  enum class stream { out = 1, err = 2 };

  // Runs `program args...`; `watch` is the stream read for the port, the other goes to /dev/null.
  child_process(const std::string& program, std::vector<std::string> args, stream watch = stream::out) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test
      int devnull = open("/dev/null", O_WRONLY);
      dup2(fds[1], watch == stream::out ? 1 : 2);
      if (devnull >= 0) dup2(devnull, watch == stream::out ? 2 : 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(program.c_str()));
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    if (pid_ < 0) {
      close(fds[0]);
      return;
    }
    out_ = fdopen(fds[0], "r");
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    stop(SIGTERM);
    if (drain_.joinable()) drain_.join();
    if (out_) std::fclose(out_);
  }

  // Reads lines until one starts with or contains "listening" and ends in ":PORT" (up to
  // max_lines lines; 0 at EOF), then drains the rest of the stream in the background.
  uint16_t wait_for_port(int max_lines = 200) {
    if (!out_ || port_) return port_;
    char line[1024];
    for (int i = 0; i < max_lines && std::fgets(line, sizeof line, out_); ++i) {
      std::string_view l(line);
      auto p = l.find("listening");
      if (p == std::string_view::npos) continue;
      auto c = l.rfind(':');
      if (c == std::string_view::npos || c < p) continue;
      port_ = static_cast<uint16_t>(std::atoi(line + c + 1));
      if (port_) break;
    }
    if (port_) drain_ = std::thread([f = out_] {
      char buf[4096];
      while (std::fread(buf, 1, sizeof buf, f) > 0) {
      }
    });
    return port_;
  }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // Sends `sig` and reaps the child.
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  uint16_t port_ = 0;
  std::thread drain_;
};

}  // namespace fp::test
