#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/layer_norm.h"

namespace im::kernels::cuda {

namespace {

// Three passes over the row: mean, squared deviations from it (no cancellation), output.
template <typename T, int kW>
__global__ void layer_norm_forward_kernel(const T* x, const T* weight, const T* bias, T* y, T* mean,
                                          T* rstd, int64_t rows, int64_t cols, double eps) {
  __shared__ double scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* xr = x + r * cols;
  T* yr = y + r * cols;
  double s = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) s += static_cast<double>(xr[c]);
  const double m = group_sum<kW>(s, scratch) / static_cast<double>(cols);
  double ss = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const double d = static_cast<double>(xr[c]) - m;
    ss += d * d;
  }
  const double var = group_sum<kW>(ss, scratch) / static_cast<double>(cols);
  const double rs = 1.0 / sqrt(var + eps);
  if (valid && rank == 0) {
    mean[row] = static_cast<T>(m);
    rstd[row] = static_cast<T>(rs);
  }
  const T tm = static_cast<T>(m), trs = static_cast<T>(rs);
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    T v = (xr[c] - tm) * trs;
    if (weight) v *= weight[c];
    if (bias) v += bias[c];
    yr[c] = v;
  }
}

// dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * weight: both means
// in one pass, then the output.
template <typename T, int kW>
__global__ void layer_norm_dx_kernel(const T* g, const T* x, const T* mean, const T* rstd,
                                     const T* weight, T* dx, int64_t rows, int64_t cols) {
  __shared__ double scratch[32];
  const int64_t row = group_row<kW>();
  // Lanes past the last row still join the shuffles; they read and write nothing.
  const bool valid = row < rows;
  const int64_t r = valid ? row : 0, n = valid ? cols : 0;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  const T* gr = g + r * cols;
  const T* xr = x + r * cols;
  T* dr = dx + r * cols;
  const double m = static_cast<double>(mean[r]), rs = static_cast<double>(rstd[r]);
  double sum_gw = 0, sum_gw_xhat = 0;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const double gw = weight ? static_cast<double>(gr[c]) * static_cast<double>(weight[c])
                             : static_cast<double>(gr[c]);
    sum_gw += gw;
    sum_gw_xhat += gw * ((static_cast<double>(xr[c]) - m) * rs);
  }
  const double inv_n = 1.0 / static_cast<double>(cols);
  const double a = group_sum<kW>(sum_gw, scratch) * inv_n;
  const double b = group_sum<kW>(sum_gw_xhat, scratch) * inv_n;
#pragma unroll 4
  for (int64_t c = rank; c < n; c += size) {
    const double gw = weight ? static_cast<double>(gr[c]) * static_cast<double>(weight[c])
                             : static_cast<double>(gr[c]);
    const double xhat = (static_cast<double>(xr[c]) - m) * rs;
    dr[c] = static_cast<T>(rs * (gw - a - xhat * b));
  }
}

// dweight[c] = sum_r g * xhat, dbias[c] = sum_r g: the column-sum layout of sum_cols
// (block 32 x 8, each warp reads 32 consecutive columns of a row), two sums at once.
template <typename T>
__global__ void layer_norm_param_grad_kernel(const T* g, const T* x, const T* mean, const T* rstd,
                                             T* dweight, T* dbias, double* partial, int64_t rows,
                                             int64_t cols, int64_t seg) {
  __shared__ double tile_w[kColLanes][kColTile + 1];
  __shared__ double tile_b[kColLanes][kColTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = begin + seg < rows ? begin + seg : rows;
  double aw = 0, ab = 0;
  if (c < cols) {
#pragma unroll 4
    for (int64_t r = begin + threadIdx.y; r < end; r += kColLanes) {
      const double gv = static_cast<double>(g[r * cols + c]);
      if (dweight) {
        const double xhat = (static_cast<double>(x[r * cols + c]) - static_cast<double>(mean[r])) *
                            static_cast<double>(rstd[r]);
        aw += gv * xhat;
      }
      ab += gv;
    }
  }
  tile_w[threadIdx.y][threadIdx.x] = aw;
  tile_b[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  double sw = tile_w[0][threadIdx.x], sb = tile_b[0][threadIdx.x];
  for (int k = 1; k < kColLanes; ++k) {
    sw += tile_w[k][threadIdx.x];
    sb += tile_b[k][threadIdx.x];
  }
  if (partial) {
    const int64_t k = static_cast<int64_t>(blockIdx.y) * cols + c;
    partial[2 * k] = sw;
    partial[2 * k + 1] = sb;
  } else {
    if (dweight) dweight[c] = static_cast<T>(sw);
    if (dbias) dbias[c] = static_cast<T>(sb);
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
    if (dweight) dweight[c] = static_cast<T>(sw);
    if (dbias) dbias[c] = static_cast<T>(sb);
  }
}

}  // namespace

template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols, double eps) {
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
void layer_norm_backward(const T* g, const T* x, const T* mean, const T* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols, void* workspace) {
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

#define IM_CUDA_INSTANTIATE(T)                                                                    \
  template void layer_norm_forward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, \
                                      double);                                                    \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*,  \
                                       T*, int64_t, int64_t, void*);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
