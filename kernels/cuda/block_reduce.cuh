// Warp and block reductions shared by the row kernels (reductions, softmax, layer norm,
// AdamW's sum of squares), and the launch shape they use. A row is reduced by a group of
// threads: a slice of a warp for short rows (2, 4, ... 32 lanes: several rows per warp, so
// rows of 7 or 16 columns do not leave most lanes idle), a whole warp up to 1024 columns,
// and one block per row (or per segment of a row) beyond. Every reduction combines in a
// fixed order, so results do not change from run to run.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/bfloat16.h"

namespace im::kernels::cuda {

// What a row kernel accumulates its sums in for storage type T: double for float32 and
// float64 (the CPU reference's precision), float for bfloat16. bfloat16 inputs carry 8
// significant bits, so float sums lose nothing measurable, and they spare a kernel that
// moves half the bytes the float<->double conversions that would otherwise bound it.
template <typename T>
using row_accum_t = std::conditional_t<std::is_same_v<T, bfloat16>, float, double>;

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;
// Rows of at most this many columns go to a warp (or a slice of one), longer ones to a
// block per row.
constexpr int64_t kWarpRowMaxCols = 1024;
constexpr int kRowThreads = 256;  // threads per block of the warp-group kernels
// Enough blocks to fill an H100 (132 SMs) several times over: below this many rows, long
// rows are split into segments reduced by separate blocks.
constexpr int64_t kTargetBlocks = 1024;

// Group width (a kernel template argument): 1, 2, 4, ... 32 lanes of a warp per row, or
// kBlockGroup: the whole block per row.
constexpr int kBlockGroup = 0;

// Butterfly sum over aligned groups of kWidth lanes (1..32): every lane of a group ends
// with the same, bitwise identical value (each step adds two partners that hold each
// other's value, and addition is commutative). Every lane of the warp must call it.
template <int kWidth = kWarpSize, typename V>
__device__ __forceinline__ V warp_sum(V v) {
#pragma unroll
  for (int o = kWidth / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Sum over a 1-D block whose size is a multiple of 32; every thread gets the result.
// `scratch` is shared memory for 32 values; calls may follow each other directly.
template <typename V>
__device__ __forceinline__ V block_sum(V v, V* scratch) {
  v = warp_sum(v);
  __syncthreads();  // the previous call's reads of scratch are done
  if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  V total = scratch[0];
  const int warps = static_cast<int>(blockDim.x >> 5);
  for (int w = 1; w < warps; ++w) total += scratch[w];
  return total;
}

// The row of this thread's group. With lane groups, a warp may hold rows past the end:
// kernels keep those lanes in the shuffles (they must all take part) and only skip their
// loads and stores.
template <int kWidth>
__device__ __forceinline__ int64_t group_row() {
  if constexpr (kWidth == kBlockGroup) {
    return static_cast<int64_t>(blockIdx.x);
  } else {
    return static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWidth) + threadIdx.x / kWidth;
  }
}

template <int kWidth>
__device__ __forceinline__ int group_rank() {
  if constexpr (kWidth == kBlockGroup) {
    return static_cast<int>(threadIdx.x);
  } else {
    return static_cast<int>(threadIdx.x & (kWidth - 1));
  }
}

template <int kWidth>
__device__ __forceinline__ int group_size() {
  if constexpr (kWidth == kBlockGroup) {
    return static_cast<int>(blockDim.x);
  } else {
    return kWidth;
  }
}

template <int kWidth, typename V>
__device__ __forceinline__ V group_sum(V v, V* scratch) {
  if constexpr (kWidth == kBlockGroup) {
    return block_sum(v, scratch);
  } else {
    return warp_sum<kWidth>(v);
  }
}

// First shuffle offset of a group's butterfly (a block starts with whole warps).
template <int kWidth>
constexpr int first_offset() {
  return kWidth == kBlockGroup ? kWarpSize / 2 : kWidth / 2;
}

// Maximum that propagates NaN (any NaN operand wins).
template <typename T>
__device__ __forceinline__ T nan_max(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  return b > a ? b : a;
}

template <int kWidth, typename T>
__device__ __forceinline__ T group_nan_max(T v, T* scratch) {
#pragma unroll
  for (int o = first_offset<kWidth>(); o > 0; o >>= 1)
    v = nan_max(v, __shfl_xor_sync(kFullMask, v, o));
  if constexpr (kWidth == kBlockGroup) {
    __syncthreads();
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = scratch[0];
    const int warps = static_cast<int>(blockDim.x >> 5);
    for (int w = 1; w < warps; ++w) v = nan_max(v, scratch[w]);
  }
  return v;
}

// Launch shape of a row kernel over [rows, cols].
struct RowShape {
  int width = kWarpSize;  // lanes per row (1..32), or kBlockGroup
  unsigned grid = 1;      // blocks
  int threads = kRowThreads;
};

inline RowShape row_shape(int64_t rows, int64_t cols) {
  RowShape s;
  if (cols <= kWarpRowMaxCols) {
    int width = 1;
    while (width < kWarpSize && width < cols) width *= 2;
    s.width = width;
    s.threads = kRowThreads;
    const int64_t rows_per_block = kRowThreads / width;
    s.grid = static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
  } else {
    s.width = kBlockGroup;
    s.threads = cols >= 8192 ? 512 : 256;
    s.grid = static_cast<unsigned>(rows);
  }
  return s;
}

// Calls f.template operator()<W>() with W the shape's width as a constant, so a kernel
// template can be instantiated for each group width.
template <typename F>
void with_group_width(int width, F&& f) {
  switch (width) {
    case 1:
      f.template operator()<1>();
      break;
    case 2:
      f.template operator()<2>();
      break;
    case 4:
      f.template operator()<4>();
      break;
    case 8:
      f.template operator()<8>();
      break;
    case 16:
      f.template operator()<16>();
      break;
    case 32:
      f.template operator()<32>();
      break;
    default:
      f.template operator()<kBlockGroup>();
      break;
  }
}

// Launch shape of a column reduction over [rows, cols] (sum_cols, layer norm's parameter
// gradients): blocks of 32 columns x 8 row lanes; when the column blocks alone are too few
// to fill the GPU, the rows are split over blockIdx.y into partial sums.
struct ColPlan {
  unsigned col_blocks = 1;
  int64_t splits = 1;
  int64_t seg = 0;  // rows per split
};

constexpr int kColTile = 32;  // columns per block (one warp's width)
constexpr int kColLanes = 8;  // row lanes per block

inline ColPlan col_plan(int64_t rows, int64_t cols) {
  ColPlan p;
  p.col_blocks = static_cast<unsigned>((cols + kColTile - 1) / kColTile);
  p.seg = rows;
  if (rows <= 0 || p.col_blocks >= kTargetBlocks) return p;
  const int64_t want = (kTargetBlocks + p.col_blocks - 1) / p.col_blocks;
  const int64_t splits = std::min<int64_t>(want, (rows + 63) / 64);
  if (splits <= 1) return p;
  p.seg = (rows + splits - 1) / splits;
  p.splits = (rows + p.seg - 1) / p.seg;
  return p;
}

template <typename T>
__device__ __forceinline__ T dev_exp(T x) {
  if constexpr (sizeof(T) == 4) {
    return expf(x);
  } else {
    return exp(x);
  }
}

}  // namespace im::kernels::cuda
