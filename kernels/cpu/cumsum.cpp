#include "kernels/cpu/cumsum.h"

#include <algorithm>
#include <vector>

namespace im::kernels::cpu {

template <typename T>
void cumsum(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool reverse) {
  std::vector<double> acc(inner);  // one running sum per inner position
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t s = 0; s < n; ++s) {
      const int64_t t = reverse ? n - 1 - s : s;
      const T* xr = x + (o * n + t) * inner;
      T* yr = y + (o * n + t) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        acc[i] += xr[i];
        yr[i] = static_cast<T>(acc[i]);
      }
    }
  }
}

template void cumsum<float>(const float*, float*, int64_t, int64_t, int64_t, bool);
template void cumsum<double>(const double*, double*, int64_t, int64_t, int64_t, bool);

}  // namespace im::kernels::cpu
