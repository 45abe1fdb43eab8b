#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/bfloat16.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/runtime.h"

namespace im::kernels::cuda {

namespace {

template <typename T>
struct AdamWConsts {
  T b1, b2, eps, lr, decay, inv_bc1, inv_sqrt_bc2;
};

// With a model copy (mixed precision: float32 masters, a bfloat16 model) the updated
// value is also stored there, rounded, so the model's parameters cost no separate pass.
template <typename T, typename M>
__global__ void adamw_kernel(T* params, const T* grads, T* exp_avg, T* exp_avg_sq,
                             const T* decay_mask, int64_t n, AdamWConsts<T> k, M* model_copy) {
  IM_GRID_STRIDE_LOOP(i, n) {
    const T g = grads[i];
    const T m = k.b1 * exp_avg[i] + (T(1) - k.b1) * g;
    const T v = k.b2 * exp_avg_sq[i] + (T(1) - k.b2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    T p = params[i];
    p = p - k.decay * decay_mask[i] * p;
    p -= k.lr * (m * k.inv_bc1) / (sqrt(v) * k.inv_sqrt_bc2 + k.eps);
    params[i] = p;
    if (model_copy) model_copy[i] = convert<M>(p);
  }
}

template <typename T>
AdamWConsts<T> adamw_consts(const AdamWStep& s) {
  return {T(s.beta1),
          T(s.beta2),
          T(s.eps),
          T(s.lr),
          T(s.lr * s.weight_decay),
          T(1.0 / s.bias_correction1),
          T(1.0 / std::sqrt(s.bias_correction2))};
}

// Blocks of the first pass of sum_of_squares: a fixed number for a given n, so the order
// of the additions (and the result) never changes.
constexpr int kSsqThreads = 256;
constexpr int64_t kSsqMaxBlocks = 1024;

int64_t ssq_blocks(int64_t n) {
  return std::max<int64_t>(1,
                           std::min<int64_t>(kSsqMaxBlocks, (n + kSsqThreads - 1) / kSsqThreads));
}

template <typename T>
__global__ void sum_of_squares_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double scratch[32];
  double acc = 0;
  IM_GRID_STRIDE_LOOP(i, n) {
    const double v = static_cast<double>(x[i]);
    acc += v * v;
  }
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// One block: partial[0 .. count) summed into *out.
__global__ void sum_partials_kernel(const double* partial, int64_t count, double* out) {
  __shared__ double scratch[32];
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

template <typename T>
__global__ void scale_kernel(T* x, T factor, int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) x[i] *= factor;
}

}  // namespace

template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s) {
  if (n <= 0) return;
  adamw_kernel<T, T><<<blocks_for(n), kThreads, 0, stream()>>>(
      params, grads, exp_avg, exp_avg_sq, decay_mask, n, adamw_consts<T>(s), nullptr);
  check_last_launch("adamw kernel");
}

void adamw_mixed(float* master, bfloat16* model, const float* grads, float* exp_avg,
                 float* exp_avg_sq, const float* decay_mask, int64_t n, const AdamWStep& s) {
  if (n <= 0) return;
  adamw_kernel<float, bfloat16><<<blocks_for(n), kThreads, 0, stream()>>>(
      master, grads, exp_avg, exp_avg_sq, decay_mask, n, adamw_consts<float>(s), model);
  check_last_launch("adamw (mixed precision) kernel");
}

size_t sum_of_squares_workspace_bytes(int64_t n) {
  return static_cast<size_t>(ssq_blocks(n) + 1) * sizeof(double);
}

template <typename T>
double sum_of_squares(const T* x, int64_t n, void* workspace) {
  if (n <= 0) return 0.0;
  if (!workspace)
    throw std::runtime_error(
        "sum_of_squares: missing device workspace (sum_of_squares_workspace_bytes)");
  double* partial = static_cast<double*>(workspace);
  const int64_t blocks = ssq_blocks(n);
  sum_of_squares_kernel<T>
      <<<static_cast<unsigned>(blocks), kSsqThreads, 0, stream()>>>(x, n, partial);
  check_last_launch("sum_of_squares kernel");
  sum_partials_kernel<<<1, 1024, 0, stream()>>>(partial, blocks, partial + blocks);
  check_last_launch("sum_of_squares partials kernel");
  double result = 0;
  memcpy_device_to_host(&result, partial + blocks, sizeof(double));
  return result;
}

template <typename T>
void scale(T* x, T factor, int64_t n) {
  if (n <= 0) return;
  scale_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, factor, n);
  check_last_launch("scale kernel");
}

#define IM_CUDA_INSTANTIATE(T)                                                       \
  template void adamw<T>(T*, const T*, T*, T*, const T*, int64_t, const AdamWStep&); \
  template double sum_of_squares<T>(const T*, int64_t, void*);                       \
  template void scale<T>(T*, T, int64_t);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
