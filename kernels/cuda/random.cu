#include <cuda_runtime.h>

#include "kernels/bfloat16.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/random.h"
#include "kernels/philox.h"

namespace im::kernels::cuda {

namespace {

template <typename T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo,
                               double hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    const double u = philox::to_uniform(philox::word(seed, offset, i));
    out[i] = convert<T>(lo + (hi - lo) * u);
  }
}

template <typename T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    const double u1 = 1.0 - philox::to_uniform(philox::word(seed, offset, 2 * i));
    const double u2 = philox::to_uniform(philox::word(seed, offset, 2 * i + 1));
    out[i] = convert<T>(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
  }
}

__global__ void bernoulli_kernel(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset,
                                 double keep_prob) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    out[i] = philox::to_uniform(philox::word(seed, offset, i)) < keep_prob ? 1 : 0;
}

}  // namespace

template <typename T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  if (n == 0) return;
  uniform_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(out, n, seed, offset, lo, hi);
  check_last_launch("uniform kernel");
}

template <typename T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  normal_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(out, n, seed, offset);
  check_last_launch("normal kernel");
}

void bernoulli_mask(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset, double keep_prob) {
  if (n == 0) return;
  bernoulli_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(out, n, seed, offset, keep_prob);
  check_last_launch("bernoulli kernel");
}

template void uniform<float>(float*, int64_t, uint64_t, uint64_t, double, double);
template void uniform<double>(double*, int64_t, uint64_t, uint64_t, double, double);
template void normal<float>(float*, int64_t, uint64_t, uint64_t);
template void normal<double>(double*, int64_t, uint64_t, uint64_t);
template void uniform<bfloat16>(bfloat16*, int64_t, uint64_t, uint64_t, double, double);
template void normal<bfloat16>(bfloat16*, int64_t, uint64_t, uint64_t);

}  // namespace im::kernels::cuda
