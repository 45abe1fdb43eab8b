#include "dist/collective_watchdog.h"

#include <cstdio>
#include <cstdlib>

namespace im::dist {

namespace {

void print_and_exit(const std::string& message) {
  std::fprintf(stderr, "infomamba_dist: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

CollectiveWatchdog::CollectiveWatchdog(std::string who, double timeout_seconds,
                                       TimeoutHandler on_timeout)
    : who_(std::move(who)),
      timeout_ms_(static_cast<int64_t>(timeout_seconds * 1000)),
      on_timeout_(on_timeout ? std::move(on_timeout) : TimeoutHandler(print_and_exit)),
      thread_([this] { loop(); }) {}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

CollectiveWatchdog::Watch::Watch(CollectiveWatchdog& dog, const char* what) : dog_(dog) {
  std::lock_guard<std::mutex> lock(dog_.mutex_);
  dog_.what_ = what;
  dog_.since_ = std::chrono::steady_clock::now();
  dog_.fired_ = false;
}

CollectiveWatchdog::Watch::~Watch() {
  std::lock_guard<std::mutex> lock(dog_.mutex_);
  dog_.what_ = nullptr;
}

void CollectiveWatchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    // A coarse tick: the timeouts are seconds to minutes, and waking 5 times a second
    // costs nothing next to a training step.
    wake_.wait_for(lock, std::chrono::milliseconds(200));
    const int64_t limit_ms = timeout_ms_.load();
    if (stopping_ || what_ == nullptr || fired_ || limit_ms <= 0) continue;
    const auto waited = std::chrono::steady_clock::now() - since_;
    if (waited < std::chrono::milliseconds(limit_ms)) continue;
    fired_ = true;
    char line[512];
    std::snprintf(line, sizeof line,
                  "%s: %s did not complete within %g s (dist.timeout_s): a rank or node stopped "
                  "responding; ending this rank so the launcher ends the others",
                  who_.c_str(), what_, limit_ms / 1000.0);
    const std::string message = line;
    lock.unlock();  // the handler may take time (or, in tests, inspect the watchdog)
    on_timeout_(message);
    lock.lock();
  }
}

}  // namespace im::dist
