// A deadline on every blocking collective: a rank waiting longer than the timeout for its
// peers (a rank or a node stopped responding: hung, or cut off the network without its
// process dying) reports what it waited for and ends the process, so the launcher (mpirun,
// srun --kill-on-bad-exit) ends the others instead of every rank hanging forever. A waiting
// thread cannot be interrupted inside MPI, hence a second thread that watches the clock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace im::dist {

class CollectiveWatchdog {
 public:
  // Called on the watchdog thread with one line saying what timed out; by default it is
  // printed to stderr and the process ends with exit code 1 (std::_Exit: no MPI call is
  // safe from this thread, and a clean shutdown would wait for the hung collective).
  using TimeoutHandler = std::function<void(const std::string& message)>;

  // `who` names this rank in the message ("rank 3 of 8 (host)"). Timeout 0: never fires.
  explicit CollectiveWatchdog(std::string who, double timeout_seconds = 0,
                              TimeoutHandler on_timeout = {});
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  void set_timeout(double seconds) { timeout_ms_.store(static_cast<int64_t>(seconds * 1000)); }
  double timeout() const { return timeout_ms_.load() / 1000.0; }

  // Watches one blocking wait from construction to destruction; `what` names it
  // ("all_reduce"). Watches do not nest (the collectives are issued from one thread).
  class Watch {
   public:
    Watch(CollectiveWatchdog& dog, const char* what);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    CollectiveWatchdog& dog_;
  };

 private:
  void loop();

  std::string who_;
  std::atomic<int64_t> timeout_ms_;
  TimeoutHandler on_timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  // The wait in progress: its name and start (steady clock), or none.
  const char* what_ = nullptr;
  std::chrono::steady_clock::time_point since_;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace im::dist
