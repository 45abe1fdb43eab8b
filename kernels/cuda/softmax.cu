#include <cuda_runtime.h>

#include <cmath>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/softmax.h"

namespace im::kernels::cuda {

namespace {

// Three passes over the row (max, sum of exponentials, output); the second and third read
// it from L1/L2. exp runs in T and the sum in double, as on the CPU.
template <typename T, int kW, bool kLog>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t rows, int64_t cols) {
  __shared__ T max_scratch[32];
  __shared__ double sum_scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  T m = static_cast<T>(-INFINITY);
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) m = nan_max(m, xr[c]);
  m = group_nan_max<kW>(m, max_scratch);
  double total = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) total += static_cast<double>(dev_exp(xr[c] - m));
  total = group_sum<kW>(total, sum_scratch);
  if constexpr (kLog) {
    // Subtracting m and log(total) separately keeps x - m exact for the largest entry.
    const T log_total = static_cast<T>(log(total));
#pragma unroll 4
    for (int64_t c = rank; c < n; c += size) yr[c] = (xr[c] - m) - log_total;
  } else {
    const T inv = static_cast<T>(1.0 / total);
#pragma unroll 4
    for (int64_t c = rank; c < n; c += size) yr[c] = dev_exp(xr[c] - m) * inv;
  }
}

template <typename T, int kW, bool kLog>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  __shared__ double scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* gr = g + r * cols;
  const T* yr = y + r * cols;
  T* dr = dx + r * cols;
  double acc = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    if constexpr (kLog) {
      acc += static_cast<double>(gr[c]);
    } else {
      acc += static_cast<double>(gr[c]) * static_cast<double>(yr[c]);
    }
  }
  const T s = static_cast<T>(group_sum<kW>(acc, scratch));
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    if constexpr (kLog) {
      dr[c] = gr[c] - dev_exp(yr[c]) * s;
    } else {
      dr[c] = yr[c] * (gr[c] - s);
    }
  }
}

template <typename T, bool kLog>
void forward(const T* x, T* y, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  const RowShape s = row_shape(rows, cols);
  with_group_width(s.width, [&]<int W>() {
    softmax_forward_kernel<T, W, kLog><<<s.grid, s.threads, 0, stream()>>>(x, y, rows, cols);
  });
  check_last_launch(kLog ? "log_softmax kernel" : "softmax kernel");
}

template <typename T, bool kLog>
void backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  const RowShape s = row_shape(rows, cols);
  with_group_width(s.width, [&]<int W>() {
    softmax_backward_kernel<T, W, kLog><<<s.grid, s.threads, 0, stream()>>>(g, y, dx, rows, cols);
  });
  check_last_launch(kLog ? "log_softmax backward kernel" : "softmax backward kernel");
}

}  // namespace

template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  forward<T, false>(x, y, rows, cols);
}

template <typename T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t cols) {
  forward<T, true>(x, y, rows, cols);
}

template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  backward<T, false>(g, y, dx, rows, cols);
}

template <typename T>
void log_softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  backward<T, true>(g, y, dx, rows, cols);
}

#define IM_CUDA_INSTANTIATE(T)                                                 \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t);            \
  template void log_softmax_forward<T>(const T*, T*, int64_t, int64_t);        \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t); \
  template void log_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
