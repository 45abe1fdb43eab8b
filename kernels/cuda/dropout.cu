#include <cuda_runtime.h>

#include "kernels/bfloat16.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/launch.cuh"

namespace im::kernels::cuda {

namespace {

template <typename T>
__global__ void masked_scale_kernel(const T* x, const uint8_t* mask, int64_t group,
                                    compute_t<T> scale, T* out, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const uint8_t keep = mask[group == 1 ? i : i / group];
    out[i] = convert<T>(keep ? convert<C>(x[i]) * scale : C(0));
  }
}

}  // namespace

template <typename T>
void masked_scale(const T* x, const uint8_t* mask, int64_t group, compute_t<T> scale, T* out,
                  int64_t n) {
  if (n <= 0 || group <= 0) return;
  masked_scale_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, mask, group, scale, out, n);
  check_last_launch("masked_scale kernel");
}

template void masked_scale<float>(const float*, const uint8_t*, int64_t, float, float*, int64_t);
template void masked_scale<double>(const double*, const uint8_t*, int64_t, double, double*,
                                   int64_t);
template void masked_scale<bfloat16>(const bfloat16*, const uint8_t*, int64_t, float, bfloat16*,
                                     int64_t);

}  // namespace im::kernels::cuda
