#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/bfloat16.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.h"

namespace im::kernels::cuda {

namespace {

// Segments of a long row, one block each (blockIdx.y), when rows alone are too few blocks.
struct Segments {
  int64_t splits = 1;
  int64_t seg = 0;  // columns per segment
};

Segments row_segments(int64_t rows, int64_t cols) {
  Segments p;
  p.seg = cols;
  if (rows <= 0 || cols <= kWarpRowMaxCols || rows >= kTargetBlocks) return p;
  const int64_t want = (kTargetBlocks + rows - 1) / rows;
  const int64_t min_seg = static_cast<int64_t>(row_shape(rows, cols).threads) * 8;
  const int64_t splits = std::min(want, (cols + min_seg - 1) / min_seg);
  if (splits <= 1) return p;
  p.seg = (cols + splits - 1) / splits;
  p.splits = (cols + p.seg - 1) / p.seg;
  return p;
}

// Column sums of at most this many rows take one thread per column.
constexpr int64_t kFewRows = 16;

void require_workspace(const void* workspace, const char* what) {
  if (!workspace)
    throw std::runtime_error(std::string(what) + ": missing device workspace (size it with " +
                             "the matching *_workspace_bytes function)");
}

__device__ __forceinline__ int64_t seg_end(int64_t begin, int64_t seg, int64_t cols) {
  return begin + seg < cols ? begin + seg : cols;
}

// ---- sum ------------------------------------------------------------------------------

template <typename T, int kW>
__global__ void sum_rows_kernel(const T* x, T* out, row_accum_t<T>* partial, int64_t rows,
                                int64_t cols, int64_t seg) {
  using A = row_accum_t<T>;
  __shared__ A scratch[32];
  const int64_t row = group_row<kW>();
  const bool valid = row < rows;  // lanes past the last row still join the shuffles
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = valid ? seg_end(begin, seg, cols) : begin;
  const T* xr = x + (valid ? row : 0) * cols;
  A acc = 0;
#pragma unroll 4
  for (int64_t c = begin + group_rank<kW>(); c < end; c += group_size<kW>())
    acc += convert<A>(xr[c]);
  acc = group_sum<kW>(acc, scratch);
  if (!valid || group_rank<kW>() != 0) return;
  if (partial) {
    partial[row * gridDim.y + blockIdx.y] = acc;
  } else {
    out[row] = convert<T>(acc);
  }
}

template <typename T>
__global__ void sum_partials_kernel(const row_accum_t<T>* partial, T* out, int64_t rows,
                                    int64_t splits) {
  IM_GRID_STRIDE_LOOP(r, rows) {
    row_accum_t<T> acc = 0;
    for (int64_t k = 0; k < splits; ++k) acc += partial[r * splits + k];
    out[r] = convert<T>(acc);
  }
}

// ---- max ------------------------------------------------------------------------------

// Whether candidate (bv, bi) replaces (av, ai): ai < 0 is "nothing yet"; a NaN beats a
// number; a larger value wins; among NaNs or equal values the smaller index wins. The
// order is total and symmetric, so any combination order gives the first maximum.
template <typename T>
__device__ __forceinline__ bool max_takes(T bv, int64_t bi, T av, int64_t ai) {
  if (bi < 0) return false;
  if (ai < 0) return true;
  const bool an = av != av, bn = bv != bv;
  if (an != bn) return bn;
  if (!an && bv != av) return bv > av;
  return bi < ai;
}

// Values compare in C = compute_t<T> (bfloat16 widens exactly to float), so the maximum
// stored back is the input element itself.
template <typename T, int kW>
__global__ void max_rows_kernel(const T* x, T* out, int64_t* argmax, double* pv, int64_t* pi,
                                int64_t rows, int64_t cols, int64_t seg) {
  using C = compute_t<T>;
  __shared__ C sv[32];
  __shared__ int64_t si[32];
  const int64_t row = group_row<kW>();
  const bool valid = row < rows;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = valid ? seg_end(begin, seg, cols) : begin;
  const T* xr = x + (valid ? row : 0) * cols;
  C v = C(0);
  int64_t i = -1;
  for (int64_t c = begin + group_rank<kW>(); c < end; c += group_size<kW>()) {
    const C xv = convert<C>(xr[c]);
    if (max_takes(xv, c, v, i)) {
      v = xv;
      i = c;
    }
  }
#pragma unroll
  for (int o = first_offset<kW>(); o > 0; o >>= 1) {
    const C ov = __shfl_xor_sync(kFullMask, v, o);
    const int64_t oi =
        static_cast<int64_t>(__shfl_xor_sync(kFullMask, static_cast<long long>(i), o));
    if (max_takes(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
  if constexpr (kW == kBlockGroup) {
    if ((threadIdx.x & 31) == 0) {
      sv[threadIdx.x >> 5] = v;
      si[threadIdx.x >> 5] = i;
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    const int warps = static_cast<int>(blockDim.x >> 5);
    for (int w = 1; w < warps; ++w) {
      if (max_takes(sv[w], si[w], v, i)) {
        v = sv[w];
        i = si[w];
      }
    }
  } else {
    if (!valid || group_rank<kW>() != 0) return;
  }
  if (pv) {
    pv[row * gridDim.y + blockIdx.y] = static_cast<double>(v);
    pi[row * gridDim.y + blockIdx.y] = i;
  } else {
    out[row] = convert<T>(v);
    argmax[row] = i;
  }
}

template <typename T>
__global__ void max_partials_kernel(const double* pv, const int64_t* pi, T* out, int64_t* argmax,
                                    int64_t rows, int64_t splits) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(r, rows) {
    C v = C(0);
    int64_t i = -1;
    for (int64_t k = 0; k < splits; ++k) {
      const C cv = static_cast<C>(pv[r * splits + k]);
      const int64_t ci = pi[r * splits + k];
      if (max_takes(cv, ci, v, i)) {
        v = cv;
        i = ci;
      }
    }
    out[r] = convert<T>(v);
    argmax[r] = i;
  }
}

template <typename T>
__global__ void max_rows_backward_kernel(const T* g, const int64_t* argmax, T* dx, int64_t rows,
                                         int64_t cols) {
  IM_GRID_STRIDE_LOOP(idx, rows * cols) {
    const int64_t r = idx / cols;
    const int64_t c = idx - r * cols;
    dx[idx] = c == argmax[r] ? g[r] : T{};  // T{}: zero, bfloat16 included
  }
}

// ---- var ------------------------------------------------------------------------------

// Each group takes its segment in two passes (mean, then squared deviations from it), as
// the CPU does for the whole row; a segment's (mean, M2) go to the workspace when the row
// is split.
template <typename T, int kW>
__global__ void var_rows_kernel(const T* x, T* var, T* mean, row_accum_t<T>* partial, int64_t rows,
                                int64_t cols, int64_t seg, int64_t correction) {
  using A = row_accum_t<T>;
  __shared__ A scratch[32];
  const int64_t row = group_row<kW>();
  const bool valid = row < rows;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = valid ? seg_end(begin, seg, cols) : begin;
  const T* xr = x + (valid ? row : 0) * cols;
  const int rank = group_rank<kW>(), size = group_size<kW>();
  A s = 0;
#pragma unroll 4
  for (int64_t c = begin + rank; c < end; c += size) s += convert<A>(xr[c]);
  s = group_sum<kW>(s, scratch);
  const A m = s / static_cast<A>(end - begin);
  A ss = 0;
#pragma unroll 4
  for (int64_t c = begin + rank; c < end; c += size) {
    const A d = convert<A>(xr[c]) - m;
    ss += d * d;
  }
  ss = group_sum<kW>(ss, scratch);
  if (!valid || rank != 0) return;
  if (partial) {
    const int64_t k = row * gridDim.y + blockIdx.y;
    partial[2 * k] = m;
    partial[2 * k + 1] = ss;
  } else {
    const A denom = static_cast<A>(cols - correction);
    var[row] = convert<T>(denom > 0 ? ss / denom : static_cast<A>(NAN));
    mean[row] = convert<T>(m);
  }
}

// Chan et al.'s pairwise merge of the segments' (count, mean, M2), in segment order.
template <typename T>
__global__ void var_partials_kernel(const row_accum_t<T>* partial, T* var, T* mean, int64_t rows,
                                    int64_t cols, int64_t seg, int64_t splits, int64_t correction) {
  using A = row_accum_t<T>;
  IM_GRID_STRIDE_LOOP(r, rows) {
    A n = 0, mu = 0, m2 = 0;
    for (int64_t k = 0; k < splits; ++k) {
      const A nb = static_cast<A>(seg_end(k * seg, seg, cols) - k * seg);
      const A mb = partial[2 * (r * splits + k)];
      const A m2b = partial[2 * (r * splits + k) + 1];
      const A total = n + nb;
      const A d = mb - mu;
      mu += d * (nb / total);
      m2 += m2b + d * d * (n * nb / total);
      n = total;
    }
    const A denom = static_cast<A>(cols - correction);
    var[r] = convert<T>(denom > 0 ? m2 / denom : static_cast<A>(NAN));
    mean[r] = convert<T>(mu);
  }
}

// ---- column sums ------------------------------------------------------------------------

// Block (32, 8): thread (tx, ty) adds rows ty, ty + 8, ... of its split for column
// blockIdx.x * 32 + tx, so each warp reads 32 consecutive elements of one row; the 8 row
// lanes are then added in order.
template <typename T>
__global__ void sum_cols_kernel(const T* x, T* out, row_accum_t<T>* partial, int64_t rows,
                                int64_t cols, int64_t seg) {
  using A = row_accum_t<T>;
  __shared__ A tile[kColLanes][kColTile + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  const int64_t end = seg_end(begin, seg, rows);
  A acc = 0;
  if (c < cols) {
#pragma unroll 4
    for (int64_t r = begin + threadIdx.y; r < end; r += kColLanes)
      acc += convert<A>(x[r * cols + c]);
  }
  tile[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  A s = tile[0][threadIdx.x];
  for (int k = 1; k < kColLanes; ++k) s += tile[k][threadIdx.x];
  if (partial) {
    partial[static_cast<int64_t>(blockIdx.y) * cols + c] = s;
  } else {
    out[c] = convert<T>(s);
  }
}

// Few rows (a leading dim of 1, say): one thread per column adds its few rows, reading
// coalesced, with no row lanes left idle.
template <typename T>
__global__ void sum_cols_few_rows_kernel(const T* x, T* out, int64_t rows, int64_t cols) {
  IM_GRID_STRIDE_LOOP(c, cols) {
    row_accum_t<T> s = 0;
    for (int64_t r = 0; r < rows; ++r) s += convert<row_accum_t<T>>(x[r * cols + c]);
    out[c] = convert<T>(s);
  }
}

template <typename T>
__global__ void sum_cols_partials_kernel(const row_accum_t<T>* partial, T* out, int64_t cols,
                                         int64_t splits) {
  IM_GRID_STRIDE_LOOP(c, cols) {
    row_accum_t<T> s = 0;
    for (int64_t k = 0; k < splits; ++k) s += partial[k * cols + c];
    out[c] = convert<T>(s);
  }
}

}  // namespace

size_t row_reduce_workspace_bytes(int64_t rows, int64_t cols) {
  const Segments sp = row_segments(rows, cols);
  return sp.splits > 1 ? static_cast<size_t>(rows * sp.splits) * 16 : 0;
}

size_t sum_cols_workspace_bytes(int64_t rows, int64_t cols) {
  if (rows <= kFewRows) return 0;
  const ColPlan p = col_plan(rows, cols);
  return p.splits > 1 ? static_cast<size_t>(p.splits * cols) * sizeof(double) : 0;
}

template <typename T>
void sum_rows(const T* x, T* out, int64_t rows, int64_t cols, void* workspace) {
  if (rows <= 0) return;
  const RowShape s = row_shape(rows, cols);
  const Segments sp = row_segments(rows, cols);
  row_accum_t<T>* partial = nullptr;
  if (sp.splits > 1) {
    require_workspace(workspace, "sum_rows");
    partial = static_cast<row_accum_t<T>*>(workspace);
  }
  const dim3 grid(s.grid, static_cast<unsigned>(sp.splits));
  with_group_width(s.width, [&]<int W>() {
    sum_rows_kernel<T, W><<<grid, s.threads, 0, stream()>>>(x, out, partial, rows, cols, sp.seg);
  });
  check_last_launch("sum_rows kernel");
  if (partial) {
    sum_partials_kernel<T>
        <<<blocks_for(rows), kThreads, 0, stream()>>>(partial, out, rows, sp.splits);
    check_last_launch("sum_rows partials kernel");
  }
}

template <typename T>
void max_rows(const T* x, T* out, int64_t* argmax, int64_t rows, int64_t cols, void* workspace) {
  if (rows <= 0) return;
  if (cols <= 0) throw std::runtime_error("max_rows: rows of zero columns have no maximum");
  const RowShape s = row_shape(rows, cols);
  const Segments sp = row_segments(rows, cols);
  double* pv = nullptr;
  int64_t* pi = nullptr;
  if (sp.splits > 1) {
    require_workspace(workspace, "max_rows");
    pv = static_cast<double*>(workspace);
    pi = reinterpret_cast<int64_t*>(pv + rows * sp.splits);
  }
  const dim3 grid(s.grid, static_cast<unsigned>(sp.splits));
  with_group_width(s.width, [&]<int W>() {
    max_rows_kernel<T, W>
        <<<grid, s.threads, 0, stream()>>>(x, out, argmax, pv, pi, rows, cols, sp.seg);
  });
  check_last_launch("max_rows kernel");
  if (pv) {
    max_partials_kernel<T>
        <<<blocks_for(rows), kThreads, 0, stream()>>>(pv, pi, out, argmax, rows, sp.splits);
    check_last_launch("max_rows partials kernel");
  }
}

template <typename T>
void max_rows_backward(const T* g, const int64_t* argmax, T* dx, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  max_rows_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(g, argmax, dx, rows, cols);
  check_last_launch("max_rows backward kernel");
}

template <typename T>
void var_rows(const T* x, T* var, T* mean, int64_t rows, int64_t cols, int64_t correction,
              void* workspace) {
  if (rows <= 0) return;
  const RowShape s = row_shape(rows, cols);
  const Segments sp = row_segments(rows, cols);
  row_accum_t<T>* partial = nullptr;
  if (sp.splits > 1) {
    require_workspace(workspace, "var_rows");
    partial = static_cast<row_accum_t<T>*>(workspace);
  }
  const dim3 grid(s.grid, static_cast<unsigned>(sp.splits));
  with_group_width(s.width, [&]<int W>() {
    var_rows_kernel<T, W>
        <<<grid, s.threads, 0, stream()>>>(x, var, mean, partial, rows, cols, sp.seg, correction);
  });
  check_last_launch("var_rows kernel");
  if (partial) {
    var_partials_kernel<T><<<blocks_for(rows), kThreads, 0, stream()>>>(
        partial, var, mean, rows, cols, sp.seg, sp.splits, correction);
    check_last_launch("var_rows partials kernel");
  }
}

template <typename T>
void sum_cols(const T* x, T* out, int64_t rows, int64_t cols, void* workspace) {
  if (cols <= 0) return;
  if (rows <= kFewRows) {
    sum_cols_few_rows_kernel<T><<<blocks_for(cols), kThreads, 0, stream()>>>(x, out, rows, cols);
    check_last_launch("sum_cols kernel");
    return;
  }
  const ColPlan p = col_plan(rows, cols);
  row_accum_t<T>* partial = nullptr;
  if (p.splits > 1) {
    require_workspace(workspace, "sum_cols");
    partial = static_cast<row_accum_t<T>*>(workspace);
  }
  const dim3 grid(p.col_blocks, static_cast<unsigned>(p.splits));
  const dim3 block(kColTile, kColLanes);
  sum_cols_kernel<T><<<grid, block, 0, stream()>>>(x, out, partial, rows, cols, p.seg);
  check_last_launch("sum_cols kernel");
  if (partial) {
    sum_cols_partials_kernel<T>
        <<<blocks_for(cols), kThreads, 0, stream()>>>(partial, out, cols, p.splits);
    check_last_launch("sum_cols partials kernel");
  }
}

#define IM_CUDA_INSTANTIATE(T)                                                        \
  template void sum_rows<T>(const T*, T*, int64_t, int64_t, void*);                   \
  template void max_rows<T>(const T*, T*, int64_t*, int64_t, int64_t, void*);         \
  template void max_rows_backward<T>(const T*, const int64_t*, T*, int64_t, int64_t); \
  template void var_rows<T>(const T*, T*, T*, int64_t, int64_t, int64_t, void*);      \
  template void sum_cols<T>(const T*, T*, int64_t, int64_t, void*);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
IM_CUDA_INSTANTIATE(bfloat16)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
