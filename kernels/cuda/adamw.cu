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
template <typename T>
__host__ __device__ AdamWConsts<T> adamw_consts(const AdamWStep& s) {
  return {T(s.beta1),
          T(s.beta2),
          T(s.eps),
          T(s.lr),
          T(s.lr * s.weight_decay),
          T(1.0 / s.bias_correction1),
          T(1.0 / sqrt(s.bias_correction2))};
}

template <typename T, typename M>
__global__ void adamw_kernel(T* params, const T* grads, T* exp_avg, T* exp_avg_sq,
                             const T* decay_mask, int64_t n, AdamWConsts<T> k, M* model_copy,
                             const double* status, const AdamWStep* device_step) {
  if (status && status[kClipFinite] == 0.0) return;  // the same for every thread
  if (device_step) k = adamw_consts<T>(*device_step);
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

template <typename L>
__global__ void clip_status_kernel(const double* sum_of_squares, const L* loss, double max_norm,
                                   double* status) {
  const double norm = sqrt(*sum_of_squares);
  const bool finite = isfinite(norm) && isfinite(static_cast<double>(*loss));
  status[kClipNorm] = norm;
  status[kClipScale] = max_norm > 0 && norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
  status[kClipFinite] = finite ? 1.0 : 0.0;
}

// The factor is rounded to T once, as the host path's static_cast<T>(factor) is.
template <typename T>
__global__ void scale_by_status_kernel(T* x, const double* status, int64_t n) {
  if (status[kClipFinite] == 0.0 || status[kClipScale] == 1.0) return;
  const T factor = static_cast<T>(status[kClipScale]);
  IM_GRID_STRIDE_LOOP(i, n) x[i] *= factor;
}

}  // namespace

template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s, const double* status, const AdamWStep* device_step) {
  if (n <= 0) return;
  adamw_kernel<T, T><<<blocks_for(n), kThreads, 0, stream()>>>(params, grads, exp_avg, exp_avg_sq,
                                                               decay_mask, n, adamw_consts<T>(s),
                                                               nullptr, status, device_step);
  check_last_launch("adamw kernel");
}

void adamw_mixed(float* master, bfloat16* model, const float* grads, float* exp_avg,
                 float* exp_avg_sq, const float* decay_mask, int64_t n, const AdamWStep& s,
                 const double* status, const AdamWStep* device_step) {
  if (n <= 0) return;
  adamw_kernel<float, bfloat16><<<blocks_for(n), kThreads, 0, stream()>>>(
      master, grads, exp_avg, exp_avg_sq, decay_mask, n, adamw_consts<float>(s), model, status,
      device_step);
  check_last_launch("adamw (mixed precision) kernel");
}

size_t sum_of_squares_workspace_bytes(int64_t n) {
  return static_cast<size_t>(ssq_blocks(n) + 1) * sizeof(double);
}

template <typename T>
void sum_of_squares_to(const T* x, int64_t n, void* workspace, double* out) {
  if (!workspace)
    throw std::runtime_error(
        "sum_of_squares: missing device workspace (sum_of_squares_workspace_bytes)");
  double* partial = static_cast<double*>(workspace);
  const int64_t blocks = ssq_blocks(n);
  if (n > 0) {
    sum_of_squares_kernel<T>
        <<<static_cast<unsigned>(blocks), kSsqThreads, 0, stream()>>>(x, n, partial);
    check_last_launch("sum_of_squares kernel");
  }
  // With n = 0 no partial was written: count 0 sums nothing, and *out is 0.
  sum_partials_kernel<<<1, 1024, 0, stream()>>>(partial, n > 0 ? blocks : 0, out);
  check_last_launch("sum_of_squares partials kernel");
}

template <typename T>
double sum_of_squares(const T* x, int64_t n, void* workspace) {
  if (n <= 0) return 0.0;
  double* partial = static_cast<double*>(workspace);
  sum_of_squares_to<T>(x, n, workspace, partial ? partial + ssq_blocks(n) : nullptr);
  double result = 0;
  memcpy_device_to_host(&result, partial + ssq_blocks(n), sizeof(double));
  return result;
}

template <typename L>
void clip_status(const double* sum_of_squares, const L* loss, double max_norm, double* status) {
  clip_status_kernel<L><<<1, 1, 0, stream()>>>(sum_of_squares, loss, max_norm, status);
  check_last_launch("clip status kernel");
}

template <typename T>
void scale_by_status(T* x, const double* status, int64_t n) {
  if (n <= 0) return;
  scale_by_status_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, status, n);
  check_last_launch("scale-by-status kernel");
}

template <typename T>
void scale(T* x, T factor, int64_t n) {
  if (n <= 0) return;
  scale_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, factor, n);
  check_last_launch("scale kernel");
}

#define IM_CUDA_INSTANTIATE(T)                                                                     \
  template void adamw<T>(T*, const T*, T*, T*, const T*, int64_t, const AdamWStep&, const double*, \
                         const AdamWStep*);                                                        \
  template double sum_of_squares<T>(const T*, int64_t, void*);                                     \
  template void sum_of_squares_to<T>(const T*, int64_t, void*, double*);                           \
  template void clip_status<T>(const double*, const T*, double, double*);                          \
  template void scale_by_status<T>(T*, const double*, int64_t);                                    \
  template void scale<T>(T*, T, int64_t);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
