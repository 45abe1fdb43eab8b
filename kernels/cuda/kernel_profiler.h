// GPU time per kernel over a window of host code, from CUPTI's activity records (the
// tracing Nsight Systems uses: timestamps the GPU writes, no serialisation, no replay).
// `infomamba_dist bench --kernel-profile N` prints it for the timed steps, to show where a
// step's GPU time goes and how much of the step's wall time the GPU is busy at all.
//
// CUPTI is opened with dlopen when a profile starts, so the binary neither needs it nor
// a GPU to start; `start()` throws a clear error when it cannot be opened.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace im::kernels::cuda {

struct KernelTotal {
  std::string name;  // demangled, without the argument list (template arguments kept)
  double total_ms = 0.0;
  int64_t launches = 0;
};

struct KernelProfile {
  std::vector<KernelTotal> kernels;  // the most GPU time first; memcpy/memset included
  double kernel_ms = 0.0;            // sum of all records' durations
  double busy_ms = 0.0;              // union of their intervals: time the GPU did anything
  double window_ms = 0.0;            // host wall time between start() and stop()
  int64_t records = 0;
};

class KernelProfiler {
 public:
  KernelProfiler() = default;
  ~KernelProfiler();
  KernelProfiler(const KernelProfiler&) = delete;
  KernelProfiler& operator=(const KernelProfiler&) = delete;

  // Begins recording kernels, copies and memsets of every stream. Throws when CUPTI
  // cannot be loaded or enabled. One profiler at a time per process.
  void start();
  // Synchronises the device, flushes the records and returns them summed by name.
  KernelProfile stop();

 private:
  bool running_ = false;
  double start_s_ = 0.0;
};

// The table `bench --kernel-profile` prints: per step, the top `rows` entries.
std::string format_kernel_profile(const KernelProfile& p, int64_t steps, int64_t rows);

}  // namespace im::kernels::cuda
