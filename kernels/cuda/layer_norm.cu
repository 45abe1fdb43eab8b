#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>

#include "kernels/bfloat16.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/layer_norm.h"

namespace im::kernels::cuda {

namespace {

// Three passes over the row: mean, squared deviations from it (no cancellation), output.
// The statistics accumulate in A; the output is computed in C and rounded to T once.
template <typename T, int kW>
__global__ void layer_norm_forward_kernel(const T* x, const T* weight, const T* bias, T* y,
                                          compute_t<T>* mean, compute_t<T>* rstd, int64_t rows,
                                          int64_t cols, double eps) {
  using C = compute_t<T>;
  using A = row_accum_t<T>;
  __shared__ A scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  A s = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) s += convert<A>(xr[c]);
  const A m = group_sum<kW>(s, scratch) / static_cast<A>(cols);
  A ss = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const A d = convert<A>(xr[c]) - m;
    ss += d * d;
  }
  const A var = group_sum<kW>(ss, scratch) / static_cast<A>(cols);
  const A rs = A(1) / sqrt(var + static_cast<A>(eps));
  if (valid && rank == 0) {
    mean[row] = static_cast<C>(m);
    rstd[row] = static_cast<C>(rs);
  }
  const C tm = static_cast<C>(m), trs = static_cast<C>(rs);
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    C v = (convert<C>(xr[c]) - tm) * trs;
    if (weight) v *= convert<C>(weight[c]);
    if (bias) v += convert<C>(bias[c]);
    yr[c] = convert<T>(v);
  }
}

// g[c] * weight[c] (g[c] without a weight) in A.
template <typename A, typename T>
__device__ __forceinline__ A weighted_grad(const T* g, const T* weight, int64_t c) {
  return weight ? convert<A>(g[c]) * convert<A>(weight[c]) : convert<A>(g[c]);
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * weight: both means
// in one pass, then the output.
template <typename T, int kW>
__global__ void layer_norm_dx_kernel(const T* g, const T* x, const compute_t<T>* mean,
                                     const compute_t<T>* rstd, const T* weight, T* dx, int64_t rows,
                                     int64_t cols) {
  using A = row_accum_t<T>;
  __shared__ A scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* gr = g + r * cols;
  const T* xr = x + r * cols;
  T* dr = dx + r * cols;
  const A m = static_cast<A>(mean[r]), rs = static_cast<A>(rstd[r]);
  A sum_gw = 0, sum_gw_xhat = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const A gw = weighted_grad<A>(gr, weight, c);
    sum_gw += gw;
    sum_gw_xhat += gw * ((convert<A>(xr[c]) - m) * rs);
  }
  const A inv_n = A(1) / static_cast<A>(cols);
  const A a = group_sum<kW>(sum_gw, scratch) * inv_n;
  const A b = group_sum<kW>(sum_gw_xhat, scratch) * inv_n;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const A gw = weighted_grad<A>(gr, weight, c);
    const A xhat = (convert<A>(xr[c]) - m) * rs;
    dr[c] = convert<T>(rs * (gw - a - xhat * b));
  }
}

// dweight[c] = sum_r g * xhat, dbias[c] = sum_r g: the column-sum layout of sum_cols
// (block 32 x 8, each warp reads 32 consecutive columns of a row), two sums at once in A.
// Partial sums are double for every T, so the workspace does not depend on T (there are
// only a few per column).
template <typename T>
__global__ void layer_norm_param_grad_kernel(const T* g, const T* x, const compute_t<T>* mean,
                                             const compute_t<T>* rstd, T* dweight, T* dbias,
                                             double* partial, int64_t rows, int64_t cols,
                                             int64_t seg) {
  using A = row_accum_t<T>;
  __shared__ A tile_w[kColLanes][kColTile + 1];
  __shared__ A tile_b[kColLanes][kColTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = begin + seg < rows ? begin + seg : rows;
  A aw = 0, ab = 0;
  if (c < cols) {
#pragma unroll 4
    for (int64_t r = begin + threadIdx.y; r < end; r += kColLanes) {
      const A gv = convert<A>(g[r * cols + c]);
      if (dweight) {
        const A xhat =
            (convert<A>(x[r * cols + c]) - static_cast<A>(mean[r])) * static_cast<A>(rstd[r]);
        aw += gv * xhat;
      }
      ab += gv;
    }
  }
  tile_w[threadIdx.y][threadIdx.x] = aw;
  tile_b[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  A sw = tile_w[0][threadIdx.x], sb = tile_b[0][threadIdx.x];
  for (int k = 1; k < kColLanes; ++k) {
    sw += tile_w[k][threadIdx.x];
    sb += tile_b[k][threadIdx.x];
  }
  if (partial) {
    const int64_t k = static_cast<int64_t>(blockIdx.y) * cols + c;
    partial[2 * k] = sw;
    partial[2 * k + 1] = sb;
  } else {
    if (dweight) dweight[c] = convert<T>(sw);
    if (dbias) dbias[c] = convert<T>(sb);
  }
}

template <typename T>
__global__ void layer_norm_param_partials_kernel(const double* partial, T* dweight, T* dbias,
                                                 int64_t cols, int64_t splits) {
  IM_GRID_STRIDE_LOOP(c, cols) {
    double sw = 0, sb = 0;
    for (int64_t k = 0; k < splits; ++k) {
      sw += partial[2 * (k * cols + c)];
      sb += partial[2 * (k * cols + c) + 1];
    }
    if (dweight) dweight[c] = convert<T>(sw);
    if (dbias) dbias[c] = convert<T>(sb);
  }
}

}  // namespace

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, compute_t<T>* mean,
                        compute_t<T>* rstd, int64_t rows, int64_t cols, double eps) {
  if (rows <= 0) return;
  if (cols <= 0) throw std::runtime_error("layer_norm: rows of zero columns");
  const RowShape s = row_shape(rows, cols);
  with_group_width(s.width, [&]<int W>() {
    layer_norm_forward_kernel<T, W>
        <<<s.grid, s.threads, 0, stream()>>>(x, weight, bias, y, mean, rstd, rows, cols, eps);
  });
  check_last_launch("layer_norm forward kernel");
}

size_t layer_norm_backward_workspace_bytes(int64_t rows, int64_t cols) {
  const ColPlan p = col_plan(rows, cols);
  return p.splits > 1 ? static_cast<size_t>(p.splits * cols) * 2 * sizeof(double) : 0;
}

template <typename T>
void layer_norm_backward(const T* g, const T* x, const compute_t<T>* mean, const compute_t<T>* rstd,
                         const T* weight, T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols,
                         void* workspace) {
  if (cols <= 0) return;
  if (dx && rows > 0) {
    const RowShape s = row_shape(rows, cols);
    with_group_width(s.width, [&]<int W>() {
      layer_norm_dx_kernel<T, W>
          <<<s.grid, s.threads, 0, stream()>>>(g, x, mean, rstd, weight, dx, rows, cols);
    });
    check_last_launch("layer_norm backward (input) kernel");
  }
  if (!dweight && !dbias) return;
  const ColPlan p = col_plan(rows, cols);
  double* partial = nullptr;
  if (p.splits > 1) {
    if (!workspace)
      throw std::runtime_error(
          "layer_norm_backward: missing device workspace (layer_norm_backward_workspace_bytes)");
    partial = static_cast<double*>(workspace);
  }
  const dim3 grid(p.col_blocks, static_cast<unsigned>(p.splits));
  const dim3 block(kColTile, kColLanes);
  layer_norm_param_grad_kernel<T>
      <<<grid, block, 0, stream()>>>(g, x, mean, rstd, dweight, dbias, partial, rows, cols, p.seg);
  check_last_launch("layer_norm backward (parameters) kernel");
  if (partial) {
    layer_norm_param_partials_kernel<T>
        <<<blocks_for(cols), kThreads, 0, stream()>>>(partial, dweight, dbias, cols, p.splits);
    check_last_launch("layer_norm backward (parameter partials) kernel");
  }
}

#define IM_CUDA_INSTANTIATE(T)                                                             \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, compute_t<T>*,     \
                                      compute_t<T>*, int64_t, int64_t, double);            \
  template void layer_norm_backward<T>(const T*, const T*, const compute_t<T>*,            \
                                       const compute_t<T>*, const T*, T*, T*, T*, int64_t, \
                                       int64_t, void*);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
IM_CUDA_INSTANTIATE(bfloat16)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
