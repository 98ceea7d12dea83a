// A private redis-server for tests that kill and restart Redis: its own directory and unix socket
// under the temp directory, no persistence, no TCP port; killed with SIGKILL (and reaped) on
// demand or by the destructor. Tests that only need a Redis use the ctest fixture instead
// (tests/redis/CMakeLists.txt).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace fp::test {

struct private_redis {
  std::string dir, sock;
  pid_t pid = -1;

  // `name` keeps the directories of several instances in one test process apart.
  explicit private_redis(const std::string& name) {
    dir = (std::filesystem::temp_directory_path() / ("fp-redis-" + name + "-" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir);
    sock = dir + "/r.sock";
  }

  // Starts redis-server and waits (bounded, ~5 s) until its socket exists and `ready` (if given,
  // e.g. a PING through the client under test) says yes. False if it never got there.
  bool start(const std::function<bool()>& ready = {}) {
    std::filesystem::remove(sock);
    pid = ::fork();
    if (pid == 0) {
      ::execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock.c_str(), "--save", "",
               "--appendonly", "no", "--dir", dir.c_str(), "--logfile", (dir + "/log").c_str(), (char*)nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (std::filesystem::exists(sock) && (!ready || ready())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void kill9() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }

  ~private_redis() {
    kill9();
    std::filesystem::remove_all(dir);
  }
};

}  // namespace fp::test
