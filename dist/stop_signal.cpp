#include "dist/stop_signal.h"

#include <csignal>

namespace im::dist {

namespace {
volatile std::sig_atomic_t g_signal = 0;

// Async-signal-safe: one store, nothing else.
extern "C" void record_stop_signal(int signal) {
  g_signal = signal;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction action = {};
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a blocking read or MPI wait just continues
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int received_stop_signal() {
  return g_signal;
}

void clear_stop_signal() {
  g_signal = 0;
}

}  // namespace im::dist
