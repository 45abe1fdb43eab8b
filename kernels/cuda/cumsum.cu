#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>

#include "kernels/bfloat16.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/cumsum.h"
#include "kernels/cuda/launch.cuh"

namespace im::kernels::cuda {

namespace {

// Chunks of the scanned axis (in scan order: position s is element n - 1 - s when
// reversed), `len` positions each.
struct ScanPlan {
  int64_t chunks = 1;
  int64_t len = 0;
};

constexpr int64_t kTargetWarps = 8192;      // inner 1: warps (row chunks) in flight
constexpr int64_t kTargetThreads = 262144;  // inner > 1: threads (column chunks) in flight

ScanPlan scan_plan(int64_t outer, int64_t n, int64_t inner) {
  ScanPlan p;
  p.len = n;
  int64_t chunks = 1;
  if (inner == 1) {
    if (outer >= kTargetWarps || n <= 2048) return p;
    chunks = std::min((kTargetWarps + outer - 1) / outer, (n + 1023) / 1024);
    if (chunks <= 1) return p;
    p.len = ((n + chunks - 1) / chunks + kWarpSize - 1) / kWarpSize * kWarpSize;
  } else {
    const int64_t lanes = outer * inner;
    if (lanes >= kTargetThreads || n <= 64) return p;
    chunks = std::min((kTargetThreads + lanes - 1) / lanes, (n + 31) / 32);
    if (chunks <= 1) return p;
    p.len = (n + chunks - 1) / chunks;
  }
  p.chunks = (n + p.len - 1) / p.len;
  return p;
}

__device__ __forceinline__ int64_t chunk_end(int64_t begin, int64_t len, int64_t n) {
  return begin + len < n ? begin + len : n;
}

// ---- inner == 1: one warp per (row, chunk) ------------------------------------------

__device__ __forceinline__ int64_t warp_item() {
  return static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
}

template <typename T>
__global__ void row_chunk_sums_kernel(const T* x, row_accum_t<T>* partial, int64_t rows, int64_t n,
                                      int64_t len, int64_t chunks, bool reverse) {
  const int64_t item = warp_item();
  if (item >= rows * chunks) return;  // the whole warp
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t row = item / chunks, k = item - row * chunks;
  const int64_t begin = k * len, end = chunk_end(begin, len, n);
  const T* xr = x + row * n;
  row_accum_t<T> acc = 0;
  for (int64_t s = begin + lane; s < end; s += kWarpSize)
    acc += convert<row_accum_t<T>>(xr[reverse ? n - 1 - s : s]);
  acc = warp_sum(acc);
  if (lane == 0) partial[item] = acc;
}

// Each step scans 32 elements (Hillis-Steele over shuffles) and adds the running total.
template <typename T>
__global__ void row_scan_kernel(const T* x, T* y, const row_accum_t<T>* offsets, int64_t rows,
                                int64_t n, int64_t len, int64_t chunks, bool reverse) {
  using A = row_accum_t<T>;
  const int64_t item = warp_item();
  if (item >= rows * chunks) return;  // the whole warp
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int64_t row = item / chunks, k = item - row * chunks;
  const int64_t begin = k * len, end = chunk_end(begin, len, n);
  const T* xr = x + row * n;
  T* yr = y + row * n;
  A carry = offsets ? offsets[item] : A(0);
  for (int64_t base = begin; base < end; base += kWarpSize) {
    const int64_t s = base + lane;
    const int64_t t = reverse ? n - 1 - s : s;
    A v = s < end ? convert<A>(xr[t]) : A(0);
#pragma unroll
    for (int o = 1; o < kWarpSize; o <<= 1) {
      const A u = __shfl_up_sync(kFullMask, v, o);
      if (lane >= o) v += u;
    }
    v += carry;
    if (s < end) yr[t] = convert<T>(v);
    carry = __shfl_sync(kFullMask, v, kWarpSize - 1);
  }
}

// ---- inner > 1: one thread per (outer, chunk, inner) --------------------------------

template <typename T>
__global__ void column_chunk_sums_kernel(const T* x, row_accum_t<T>* partial, int64_t outer,
                                         int64_t n, int64_t inner, int64_t len, int64_t chunks,
                                         bool reverse) {
  IM_GRID_STRIDE_LOOP(idx, outer * chunks * inner) {
    const int64_t i = idx % inner, ok = idx / inner;
    const int64_t k = ok % chunks, o = ok / chunks;
    const int64_t begin = k * len, end = chunk_end(begin, len, n);
    row_accum_t<T> acc = 0;
    for (int64_t s = begin; s < end; ++s)
      acc += convert<row_accum_t<T>>(x[(o * n + (reverse ? n - 1 - s : s)) * inner + i]);
    partial[idx] = acc;
  }
}

template <typename T>
__global__ void column_scan_kernel(const T* x, T* y, const row_accum_t<T>* offsets, int64_t outer,
                                   int64_t n, int64_t inner, int64_t len, int64_t chunks,
                                   bool reverse) {
  IM_GRID_STRIDE_LOOP(idx, outer * chunks * inner) {
    const int64_t i = idx % inner, ok = idx / inner;
    const int64_t k = ok % chunks, o = ok / chunks;
    const int64_t begin = k * len, end = chunk_end(begin, len, n);
    row_accum_t<T> acc = offsets ? offsets[idx] : 0;
    for (int64_t s = begin; s < end; ++s) {
      const int64_t at = (o * n + (reverse ? n - 1 - s : s)) * inner + i;
      acc += convert<row_accum_t<T>>(x[at]);
      y[at] = convert<T>(acc);
    }
  }
}

// Chunk totals, laid out [outer][chunk][inner], become exclusive prefix sums in chunk
// order: one thread per (outer, inner) line.
template <typename A>
__global__ void chunk_offsets_kernel(A* partial, int64_t outer, int64_t inner, int64_t chunks) {
  IM_GRID_STRIDE_LOOP(line, outer * inner) {
    const int64_t o = line / inner, i = line - o * inner;
    A run = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      A& slot = partial[(o * chunks + k) * inner + i];
      const A v = slot;
      slot = run;
      run += v;
    }
  }
}

}  // namespace

size_t cumsum_workspace_bytes(int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || n <= 0 || inner <= 0) return 0;
  const ScanPlan p = scan_plan(outer, n, inner);
  return p.chunks > 1 ? static_cast<size_t>(outer * p.chunks * inner) * sizeof(double) : 0;
}

template <typename T>
void cumsum(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool reverse,
            void* workspace) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  const ScanPlan p = scan_plan(outer, n, inner);
  using A = row_accum_t<T>;
  A* offsets = nullptr;
  if (p.chunks > 1) {
    if (!workspace)
      throw std::runtime_error("cumsum: missing device workspace (cumsum_workspace_bytes)");
    offsets = static_cast<A*>(workspace);  // sized for double, enough for any A
  }
  if (inner == 1) {
    const int64_t warps = outer * p.chunks;
    const int64_t per_block = kRowThreads / kWarpSize;
    const unsigned grid = static_cast<unsigned>((warps + per_block - 1) / per_block);
    if (offsets) {
      row_chunk_sums_kernel<T>
          <<<grid, kRowThreads, 0, stream()>>>(x, offsets, outer, n, p.len, p.chunks, reverse);
      check_last_launch("cumsum chunk sums kernel");
      chunk_offsets_kernel<A>
          <<<blocks_for(outer), kThreads, 0, stream()>>>(offsets, outer, 1, p.chunks);
      check_last_launch("cumsum chunk offsets kernel");
    }
    row_scan_kernel<T>
        <<<grid, kRowThreads, 0, stream()>>>(x, y, offsets, outer, n, p.len, p.chunks, reverse);
    check_last_launch("cumsum kernel");
    return;
  }
  const int64_t items = outer * p.chunks * inner;
  if (offsets) {
    column_chunk_sums_kernel<T><<<blocks_for(items), kThreads, 0, stream()>>>(
        x, offsets, outer, n, inner, p.len, p.chunks, reverse);
    check_last_launch("cumsum chunk sums kernel");
    chunk_offsets_kernel<A>
        <<<blocks_for(outer * inner), kThreads, 0, stream()>>>(offsets, outer, inner, p.chunks);
    check_last_launch("cumsum chunk offsets kernel");
  }
  column_scan_kernel<T><<<blocks_for(items), kThreads, 0, stream()>>>(
      x, y, offsets, outer, n, inner, p.len, p.chunks, reverse);
  check_last_launch("cumsum kernel");
}

template void cumsum<float>(const float*, float*, int64_t, int64_t, int64_t, bool, void*);
template void cumsum<double>(const double*, double*, int64_t, int64_t, int64_t, bool, void*);
template void cumsum<bfloat16>(const bfloat16*, bfloat16*, int64_t, int64_t, int64_t, bool, void*);

}  // namespace im::kernels::cuda
