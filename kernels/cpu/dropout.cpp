#include "kernels/cpu/dropout.h"

#include <algorithm>

namespace im::kernels::cpu {

template <typename T>
void masked_scale(const T* x, const uint8_t* mask, int64_t group, T scale, T* out, int64_t n) {
  if (group == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = mask[i] ? x[i] * scale : T(0);
    return;
  }
  const int64_t groups = group > 0 ? n / group : 0;
  for (int64_t k = 0; k < groups; ++k) {
    const T* xk = x + k * group;
    T* ok = out + k * group;
    if (mask[k]) {
      for (int64_t i = 0; i < group; ++i) ok[i] = xk[i] * scale;
    } else {
      std::fill(ok, ok + group, T(0));
    }
  }
}

template void masked_scale<float>(const float*, const uint8_t*, int64_t, float, float*, int64_t);
template void masked_scale<double>(const double*, const uint8_t*, int64_t, double, double*,
                                   int64_t);

}  // namespace im::kernels::cpu
