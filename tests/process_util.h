// Process helpers for the tests that drive real programs (mpirun, Slurm, the binary):
// run a shell command and capture its output, start one in the background, wait for it
// with a limit. Header-only; POSIX.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace im::testing {

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct ShellResult {
  int exit_code = -1;  // -1: ended by a signal
  std::string out, err;
  double seconds = 0;
};

// Runs `cmd` through /bin/sh; stdout and stderr go through `base`.out and `base`.err.
inline ShellResult run_shell(const std::string& cmd, const std::string& base) {
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system((cmd + " >" + base + ".out 2>" + base + ".err").c_str());
  ShellResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

// Starts `cmd` in the background through `sh -c "exec ..."`, so the pid is that of the
// command itself, which the caller can signal and wait for.
inline pid_t spawn(const std::string& cmd) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Exit code of child `pid` (-1: killed by a signal), or kills it and returns -2 after `limit`.
inline int wait_exit(pid_t pid, double limit_seconds) {
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(limit_seconds)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -2;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Polls `done` every 100 ms for up to `limit_seconds`; true once it holds.
template <typename Predicate>
bool wait_until(Predicate done, double limit_seconds) {
  const auto start = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(limit_seconds))
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

}  // namespace im::testing
