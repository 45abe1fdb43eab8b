// Threading of the CPU kernels: OpenMP over independent chunks. Results never depend on
// the number of threads: work is split so each output element is computed by exactly one
// thread in a fixed order, and cross-chunk sums are reduced in chunk order.
#pragma once

#include <algorithm>
#include <cstdint>

namespace im::kernels::cpu {

// Elementwise kernels below this many elements run on one thread (thread start-up
// would cost more than it saves).
constexpr int64_t kParallelGrain = 1 << 15;

// Calls f(begin, end) on disjoint ranges covering [0, n), in parallel when n >= grain.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  if (n < grain) {
    f(int64_t{0}, n);
    return;
  }
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(n / std::max<int64_t>(grain / 4, 1), 64));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) f(begin, end);
  }
}

}  // namespace im::kernels::cpu
