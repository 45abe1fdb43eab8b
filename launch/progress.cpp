#include "launch/progress.h"

#include <cmath>
#include <cstdio>

namespace im::launch {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>((s % 3600) / 60));
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string format_progress(const ProgressState& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "step %lld/%lld | epoch %lld/%lld | loss %.4f | acc %.1f%% | lr %.2e | %.1f "
                "samples/s | ETA %s",
                static_cast<long long>(s.step), static_cast<long long>(s.total_steps),
                static_cast<long long>(s.epoch), static_cast<long long>(s.total_epochs), s.loss,
                100.0 * s.accuracy, s.lr, s.samples_per_second, format_duration(s.eta_seconds).c_str());
  return buf;
}

}  // namespace im::launch
