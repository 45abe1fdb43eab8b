#include <cuda_runtime.h>

#include <cmath>

#include "kernels/bfloat16.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/softmax.h"

namespace im::kernels::cuda {

namespace {

// Three passes over the row (max, sum of exponentials, output); the second and third read
// it from L1/L2. The max and exp run in C and the sum in A: T and double for float32 and
// float64, as on the CPU; float and float for bfloat16, rounded to bfloat16 once on store.
template <typename T, int kW, bool kLog>
__global__ void softmax_forward_kernel(const T* x, T* y, int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  using A = row_accum_t<T>;
  __shared__ C max_scratch[32];
  __shared__ A sum_scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  C m = static_cast<C>(-INFINITY);
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) m = nan_max(m, convert<C>(xr[c]));
  m = group_nan_max<kW>(m, max_scratch);
  A total = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) total += static_cast<A>(dev_exp(convert<C>(xr[c]) - m));
  total = group_sum<kW>(total, sum_scratch);
  if constexpr (kLog) {
    // Subtracting m and log(total) separately keeps x - m exact for the largest entry.
    const C log_total = static_cast<C>(log(total));
#pragma unroll 4
    for (int64_t c = rank; c < n; c += size)
      yr[c] = convert<T>((convert<C>(xr[c]) - m) - log_total);
  } else {
    const C inv = static_cast<C>(A(1) / total);
#pragma unroll 4
    for (int64_t c = rank; c < n; c += size)
      yr[c] = convert<T>(dev_exp(convert<C>(xr[c]) - m) * inv);
  }
}

// The row sum in A, the output in C (as the forward).
template <typename T, int kW, bool kLog>
__global__ void softmax_backward_kernel(const T* g, const T* y, T* dx, int64_t rows, int64_t cols) {
  using C = compute_t<T>;
  using A = row_accum_t<T>;
  __shared__ A scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* gr = g + r * cols;
  const T* yr = y + r * cols;
  T* dr = dx + r * cols;
  A acc = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    if constexpr (kLog) {
      acc += convert<A>(gr[c]);
    } else {
      acc += convert<A>(gr[c]) * convert<A>(yr[c]);
    }
  }
  const C s = static_cast<C>(group_sum<kW>(acc, scratch));
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    if constexpr (kLog) {
      dr[c] = convert<T>(convert<C>(gr[c]) - dev_exp(convert<C>(yr[c])) * s);
    } else {
      dr[c] = convert<T>(convert<C>(yr[c]) * (convert<C>(gr[c]) - s));
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
IM_CUDA_INSTANTIATE(bfloat16)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
