#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cuda/fused_gates.h"
#include "kernels/cuda/launch.cuh"

namespace im::kernels::cuda {

namespace {

// Launch shape: blocks of kTileThreads = tx column lanes (each V consecutive columns, one
// 16-byte access for V > 1) x ty row lanes, so a warp reads up to 32 consecutive accesses
// of one row. blockIdx.x picks the columns, blockIdx.y a segment of `seg` rows; the rows are
// split until there are about kTileBlocks blocks (a few waves of an H100's 132 SMs), so
// [64 * 196, 768] bf16 runs 3 x 342 blocks of ~37 rows each.
constexpr int kTileThreads = 256;
constexpr int64_t kTileBlocks = 1024;

// Column sums of parameter gradients: float for bfloat16 (its inputs carry 8 bits), double
// otherwise (as the CPU reference and sum_cols).
template <typename T>
using accum_t = std::conditional_t<std::is_same_v<T, bfloat16>, float, double>;

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <int V, typename T>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& v) {
  *reinterpret_cast<Pack<T, V>*>(p) = v;
}

// Row r, columns [c, c + V) of an operand; zeros when it is absent.
template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_row(const RowOperand<T>& x, int64_t r, int64_t c) {
  return x.p ? load_pack<V>(x.p + r * x.stride + c) : Pack<T, V>{};
}

// Columns [c, c + V) of a [cols] parameter in the compute type; `fallback` when absent.
template <int V, typename T>
__device__ __forceinline__ void load_param(const T* p, int64_t c, compute_t<T> fallback,
                                           compute_t<T> (&out)[V]) {
  using C = compute_t<T>;
  if (p) {
    const Pack<T, V> k = load_pack<V>(p + c);
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] = convert<C>(k.v[j]);
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] = fallback;
  }
}

struct RowSegment {
  int64_t begin, end;
};

__device__ __forceinline__ RowSegment row_segment(int64_t rows, int64_t seg) {
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * seg;
  return {begin + threadIdx.y, begin + seg < rows ? begin + seg : rows};
}

__device__ __forceinline__ int64_t first_column(int V) {
  return (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * V;
}

// Up to two parameter gradients ([cols]) a backward kernel sums over rows.
template <typename T>
struct ParamOut {
  T* out[2] = {nullptr, nullptr};
};

// Adds the block's row lanes' sums per column in a fixed order (lane 0 first), then writes
// them: to the parameter gradient, rounded to T, when the grid has one row segment, else as
// this segment's partial sum, partial[(blockIdx.y * kSums + k) * cols + column]. `tile` is
// shared memory of kSums * kTileThreads * V values. Every thread of the block must call it.
template <typename T, int V, int kSums>
__device__ __forceinline__ void block_column_sums(accum_t<T> (&acc)[kSums][V], accum_t<T>* tile,
                                                  int64_t cols, ParamOut<T> out,
                                                  accum_t<T>* partial) {
  using A = accum_t<T>;
  const int width = static_cast<int>(blockDim.x) * V;  // columns of the block, <= 256
  for (int k = 0; k < kSums; ++k) {
#pragma unroll
    for (int j = 0; j < V; ++j)
      tile[(k * blockDim.y + threadIdx.y) * width + threadIdx.x * V + j] = acc[k][j];
  }
  __syncthreads();
  const int tid = static_cast<int>(threadIdx.y * blockDim.x + threadIdx.x);
  if (tid >= width) return;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * width + tid;
  if (col >= cols) return;
  for (int k = 0; k < kSums; ++k) {
    A s = tile[(k * blockDim.y) * width + tid];
    for (unsigned y = 1; y < blockDim.y; ++y) s += tile[(k * blockDim.y + y) * width + tid];
    if (partial) {
      partial[(static_cast<int64_t>(blockIdx.y) * kSums + k) * cols + col] = s;
    } else if (out.out[k]) {
      out.out[k][col] = convert<T>(s);
    }
  }
}

// out[k][c] = sum over the `splits` row segments of partial (in segment order per lane, the
// 8 lanes then added in order), rounded to T once. With no rows (splits 0) the sums are 0.
constexpr int kFinishCols = 32, kFinishLanes = 8;

template <typename T, int kSums>
__global__ void finish_column_sums_kernel(const accum_t<T>* partial, ParamOut<T> out, int64_t cols,
                                          int64_t splits) {
  using A = accum_t<T>;
  __shared__ A tile[kSums][kFinishLanes][kFinishCols + 1];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kFinishCols + threadIdx.x;
  A acc[kSums] = {};
  if (c < cols) {
    for (int64_t s = threadIdx.y; s < splits; s += kFinishLanes) {
      for (int k = 0; k < kSums; ++k) acc[k] += partial[(s * kSums + k) * cols + c];
    }
  }
  for (int k = 0; k < kSums; ++k) tile[k][threadIdx.y][threadIdx.x] = acc[k];
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  for (int k = 0; k < kSums; ++k) {
    A s = tile[k][0][threadIdx.x];
    for (int y = 1; y < kFinishLanes; ++y) s += tile[k][y][threadIdx.x];
    if (out.out[k]) out.out[k][c] = convert<T>(s);
  }
}

// ---- gated fusion -------------------------------------------------------------------------

// mean(ys) and g at row r, columns [c, c + V), in the compute type (zeros where absent).
template <int V, typename T>
__device__ __forceinline__ void load_streams(const GatedFusionArgs<T>& a, int64_t r, int64_t c,
                                             compute_t<T> (&m)[V], compute_t<T> (&g)[V]) {
  using C = compute_t<T>;
  const Pack<T, V> y0 = load_row<V>(a.y0, r, c), y1 = load_row<V>(a.y1, r, c);
  const Pack<T, V> gp = load_row<V>(a.g, r, c);
  const bool two = a.y1.p;
#pragma unroll
  for (int j = 0; j < V; ++j) {
    m[j] = mean_of(convert<C>(y0.v[j]), convert<C>(y1.v[j]), two);
    g[j] = convert<C>(gp.v[j]);
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(kTileThreads)
    gated_fusion_forward_kernel(GatedFusionArgs<T> a, T* out, int64_t seg) {
  using C = compute_t<T>;
  const int64_t c = first_column(V);
  if (c >= a.cols) return;
  const bool has_y = a.y0.p, has_g = a.g.p;
  C ah[V], ag[V];
  load_param<V>(a.alpha_h, c, C(1), ah);
  load_param<V>(a.alpha_g, c, C(1), ag);
  const RowSegment rs = row_segment(a.rows, seg);
  for (int64_t r = rs.begin; r < rs.end; r += blockDim.y) {
    C m[V], g[V];
    load_streams<V>(a, r, c, m, g);
    const Pack<T, V> z = load_row<V>(a.z, r, c);
    Pack<T, V> o;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C zj = convert<C>(z.v[j]);
      const C f = fused_of(has_y, m[j], ah[j], has_g, g[j], ag[j]);
      o.v[j] = convert<T>(f * silu_from(zj, sigmoid_of(zj)));
    }
    store_pack<V>(out + r * a.cols + c, o);
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(kTileThreads)
    gated_fusion_backward_kernel(GatedFusionArgs<T> a, const T* dout, GatedFusionGrads<T> d,
                                 accum_t<T>* partial, int64_t seg) {
  using C = compute_t<T>;
  using A = accum_t<T>;
  __shared__ A tile[2 * kTileThreads * V];
  const int64_t c = first_column(V);
  const bool has_y = a.y0.p, two = a.y1.p, has_g = a.g.p;
  A sums[2][V] = {};  // dalpha_h, dalpha_g
  if (c < a.cols) {
    C ah[V], ag[V];
    load_param<V>(a.alpha_h, c, C(1), ah);
    load_param<V>(a.alpha_g, c, C(1), ag);
    const RowSegment rs = row_segment(a.rows, seg);
    for (int64_t r = rs.begin; r < rs.end; r += blockDim.y) {
      C m[V], g[V];
      load_streams<V>(a, r, c, m, g);
      const int64_t i = r * a.cols + c;
      const Pack<T, V> z = load_row<V>(a.z, r, c), go = load_pack<V>(dout + i);
      Pack<T, V> dy, dg, dz;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const C zj = convert<C>(z.v[j]), gj = convert<C>(go.v[j]), s = sigmoid_of(zj);
        const C dfused = gj * silu_from(zj, s);
        dy.v[j] = convert<T>(two ? dfused * ah[j] * C(0.5) : dfused * ah[j]);
        dg.v[j] = convert<T>(dfused * ag[j]);
        dz.v[j] = convert<T>(
            silu_grad_from(gj * fused_of(has_y, m[j], ah[j], has_g, g[j], ag[j]), zj, s));
        sums[0][j] += static_cast<A>(dfused * m[j]);
        sums[1][j] += static_cast<A>(dfused * g[j]);
      }
      if (d.dy) store_pack<V>(d.dy + i, dy);
      if (d.dg) store_pack<V>(d.dg + i, dg);
      if (d.dz) store_pack<V>(d.dz + i, dz);
    }
  }
  if (d.dalpha_h || d.dalpha_g) {
    ParamOut<T> out;
    out.out[0] = d.dalpha_h;
    out.out[1] = d.dalpha_g;
    block_column_sums<T, V, 2>(sums, tile, a.cols, out, partial);
  }
}

// ---- sigmoid gate -------------------------------------------------------------------------

template <typename T, int V>
__global__ void __launch_bounds__(kTileThreads)
    sigmoid_gate_forward_kernel(SigmoidGateArgs<T> a, T* out, int64_t seg) {
  using C = compute_t<T>;
  const int64_t c = first_column(V);
  if (c >= a.cols) return;
  C b[V];
  load_param<V>(a.bias, c, C(0), b);
  const RowSegment rs = row_segment(a.rows, seg);
  for (int64_t r = rs.begin; r < rs.end; r += blockDim.y) {
    const Pack<T, V> pre = load_row<V>(a.pre, r, c), g = load_row<V>(a.g, r, c);
    Pack<T, V> o;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C s = sigmoid_of(convert<C>(pre.v[j]) + b[j]);
      o.v[j] = convert<T>(s * convert<C>(g.v[j]));
    }
    store_pack<V>(out + r * a.cols + c, o);
  }
}

template <typename T, int V>
__global__ void __launch_bounds__(kTileThreads)
    sigmoid_gate_backward_kernel(SigmoidGateArgs<T> a, const T* dout, SigmoidGateGrads<T> d,
                                 accum_t<T>* partial, int64_t seg) {
  using C = compute_t<T>;
  using A = accum_t<T>;
  __shared__ A tile[kTileThreads * V];
  const int64_t c = first_column(V);
  A sums[1][V] = {};  // dbias
  if (c < a.cols) {
    C b[V];
    load_param<V>(a.bias, c, C(0), b);
    const RowSegment rs = row_segment(a.rows, seg);
    for (int64_t r = rs.begin; r < rs.end; r += blockDim.y) {
      const int64_t i = r * a.cols + c;
      const Pack<T, V> pre = load_row<V>(a.pre, r, c), g = load_row<V>(a.g, r, c);
      const Pack<T, V> go = load_pack<V>(dout + i);
      Pack<T, V> dpre, dg;
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const C gj = convert<C>(go.v[j]), s = sigmoid_of(convert<C>(pre.v[j]) + b[j]);
        const C dp = sigmoid_grad_from(gj * convert<C>(g.v[j]), s);
        dpre.v[j] = convert<T>(dp);
        dg.v[j] = convert<T>(gj * s);
        sums[0][j] += static_cast<A>(dp);
      }
      if (d.dpre) store_pack<V>(d.dpre + i, dpre);
      if (d.dg) store_pack<V>(d.dg + i, dg);
    }
  }
  if (d.dbias) {
    ParamOut<T> out;
    out.out[0] = d.dbias;
    block_column_sums<T, V, 1>(sums, tile, a.cols, out, partial);
  }
}

// ---- launch -------------------------------------------------------------------------------

struct TilePlan {
  dim3 grid, block;
  int64_t seg = 0;     // rows per blockIdx.y
  int64_t splits = 1;  // row segments (grid.y)
};

TilePlan tile_plan(int64_t rows, int64_t cols, int vec) {
  TilePlan p;
  const int64_t units = cols / vec;
  int tx = 1;
  while (tx < 32 && tx < units) tx *= 2;
  const int ty = kTileThreads / tx;
  const int64_t col_blocks = (units + tx - 1) / tx;
  const int64_t want = (kTileBlocks + col_blocks - 1) / col_blocks;
  const int64_t most = (rows + ty - 1) / ty;  // every row lane keeps at least one row
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>({want, most, 65535}));
  p.seg = (rows + splits - 1) / splits;
  p.splits = (rows + p.seg - 1) / p.seg;
  p.grid = dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(p.splits));
  p.block = dim3(static_cast<unsigned>(tx), static_cast<unsigned>(ty));
  return p;
}

// Elements per access: 16 bytes' worth when the row length, every row stride and every
// pointer allow it (buffers from the allocator and z, the second half of a [.., 2E] row,
// do), else 1.
template <typename T>
int access_width(int64_t cols, std::initializer_list<const void*> pointers,
                 std::initializer_list<int64_t> strides) {
  constexpr int V = 16 / sizeof(T);
  if (cols % V != 0) return 1;
  for (const void* p : pointers)
    if (p && reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  for (int64_t s : strides)
    if (s % V != 0) return 1;
  return V;
}

// Calls f.template operator()<V>() with V the access width as a constant.
template <typename T, typename F>
void with_width(int width, F&& f) {
  if (width == 1) {
    f.template operator()<1>();
  } else {
    f.template operator()<16 / sizeof(T)>();
  }
}

template <typename T>
int gated_fusion_width(const GatedFusionArgs<T>& a, const T* dout, const GatedFusionGrads<T>& d,
                       const T* out) {
  return access_width<T>(
      a.cols, {a.y0.p, a.y1.p, a.g.p, a.z.p, a.alpha_h, a.alpha_g, dout, d.dy, d.dg, d.dz, out},
      {a.y0.stride, a.y1.stride, a.g.stride, a.z.stride});
}

template <typename T>
int sigmoid_gate_width(const SigmoidGateArgs<T>& a, const T* dout, const SigmoidGateGrads<T>& d,
                       const T* out) {
  return access_width<T>(a.cols, {a.pre.p, a.g.p, a.bias, dout, d.dpre, d.dg, out},
                         {a.pre.stride, a.g.stride});
}

// Bytes of partial column sums for kSums parameter gradients under plan p (0: the main
// kernel writes the sums itself).
template <typename T>
size_t partial_bytes(const TilePlan& p, int64_t cols, int sums) {
  return p.splits > 1 ? static_cast<size_t>(p.splits * sums * cols) * sizeof(accum_t<T>) : 0;
}

// The workspace as partial sums; null when none are needed (bytes 0).
template <typename T>
accum_t<T>* partial_of(void* workspace, size_t bytes, const char* op) {
  if (bytes == 0) return nullptr;
  if (!workspace)
    throw std::runtime_error(std::string(op) +
                             ": missing device workspace (*_backward_workspace_bytes)");
  return static_cast<accum_t<T>*>(workspace);
}

// The second launch of a backward with parameter gradients: adds the partial sums, or, with
// no rows, writes zeros.
template <typename T, int kSums>
void finish_sums(const accum_t<T>* partial, ParamOut<T> out, int64_t cols, int64_t splits,
                 const char* what) {
  const dim3 grid(static_cast<unsigned>((cols + kFinishCols - 1) / kFinishCols));
  const dim3 block(kFinishCols, kFinishLanes);
  finish_column_sums_kernel<T, kSums><<<grid, block, 0, stream()>>>(partial, out, cols, splits);
  check_last_launch(what);
}

}  // namespace

template <typename T>
void gated_fusion_forward(const GatedFusionArgs<T>& a, T* out) {
  if (a.rows <= 0 || a.cols <= 0) return;
  with_width<T>(gated_fusion_width<T>(a, nullptr, {}, out), [&]<int V>() {
    const TilePlan p = tile_plan(a.rows, a.cols, V);
    gated_fusion_forward_kernel<T, V><<<p.grid, p.block, 0, stream()>>>(a, out, p.seg);
  });
  check_last_launch("gated_fusion forward kernel");
}

template <typename T>
size_t gated_fusion_backward_workspace_bytes(const GatedFusionArgs<T>& a, const T* dout,
                                             const GatedFusionGrads<T>& d) {
  if (a.rows <= 0 || a.cols <= 0 || (!d.dalpha_h && !d.dalpha_g)) return 0;
  const int width = gated_fusion_width<T>(a, dout, d, nullptr);
  return partial_bytes<T>(tile_plan(a.rows, a.cols, width), a.cols, 2);
}

template <typename T>
void gated_fusion_backward(const GatedFusionArgs<T>& a, const T* dout, const GatedFusionGrads<T>& d,
                           void* workspace) {
  if (a.cols <= 0) return;
  ParamOut<T> out;
  out.out[0] = d.dalpha_h;
  out.out[1] = d.dalpha_g;
  const bool sums = d.dalpha_h || d.dalpha_g;
  if (a.rows <= 0) {
    if (sums) finish_sums<T, 2>(nullptr, out, a.cols, 0, "gated_fusion backward (zero sums)");
    return;
  }
  const int width = gated_fusion_width<T>(a, dout, d, nullptr);
  const TilePlan p = tile_plan(a.rows, a.cols, width);
  accum_t<T>* partial =
      partial_of<T>(workspace, sums ? partial_bytes<T>(p, a.cols, 2) : 0, "gated_fusion_backward");
  with_width<T>(width, [&]<int V>() {
    gated_fusion_backward_kernel<T, V>
        <<<p.grid, p.block, 0, stream()>>>(a, dout, d, partial, p.seg);
  });
  check_last_launch("gated_fusion backward kernel");
  if (partial)
    finish_sums<T, 2>(partial, out, a.cols, p.splits, "gated_fusion backward (column sums)");
}

template <typename T>
void sigmoid_gate_forward(const SigmoidGateArgs<T>& a, T* out) {
  if (a.rows <= 0 || a.cols <= 0) return;
  with_width<T>(sigmoid_gate_width<T>(a, nullptr, {}, out), [&]<int V>() {
    const TilePlan p = tile_plan(a.rows, a.cols, V);
    sigmoid_gate_forward_kernel<T, V><<<p.grid, p.block, 0, stream()>>>(a, out, p.seg);
  });
  check_last_launch("sigmoid_gate forward kernel");
}

template <typename T>
size_t sigmoid_gate_backward_workspace_bytes(const SigmoidGateArgs<T>& a, const T* dout,
                                             const SigmoidGateGrads<T>& d) {
  if (a.rows <= 0 || a.cols <= 0 || !d.dbias) return 0;
  const int width = sigmoid_gate_width<T>(a, dout, d, nullptr);
  return partial_bytes<T>(tile_plan(a.rows, a.cols, width), a.cols, 1);
}

template <typename T>
void sigmoid_gate_backward(const SigmoidGateArgs<T>& a, const T* dout, const SigmoidGateGrads<T>& d,
                           void* workspace) {
  if (a.cols <= 0) return;
  ParamOut<T> out;
  out.out[0] = d.dbias;
  if (a.rows <= 0) {
    if (d.dbias) finish_sums<T, 1>(nullptr, out, a.cols, 0, "sigmoid_gate backward (zero sums)");
    return;
  }
  const int width = sigmoid_gate_width<T>(a, dout, d, nullptr);
  const TilePlan p = tile_plan(a.rows, a.cols, width);
  accum_t<T>* partial = partial_of<T>(workspace, d.dbias ? partial_bytes<T>(p, a.cols, 1) : 0,
                                      "sigmoid_gate_backward");
  with_width<T>(width, [&]<int V>() {
    sigmoid_gate_backward_kernel<T, V>
        <<<p.grid, p.block, 0, stream()>>>(a, dout, d, partial, p.seg);
  });
  check_last_launch("sigmoid_gate backward kernel");
  if (partial)
    finish_sums<T, 1>(partial, out, a.cols, p.splits, "sigmoid_gate backward (column sums)");
}

#define IM_CUDA_INSTANTIATE(T)                                                                  \
  template void gated_fusion_forward<T>(const GatedFusionArgs<T>&, T*);                         \
  template size_t gated_fusion_backward_workspace_bytes<T>(const GatedFusionArgs<T>&, const T*, \
                                                           const GatedFusionGrads<T>&);         \
  template void gated_fusion_backward<T>(const GatedFusionArgs<T>&, const T*,                   \
                                         const GatedFusionGrads<T>&, void*);                    \
  template void sigmoid_gate_forward<T>(const SigmoidGateArgs<T>&, T*);                         \
  template size_t sigmoid_gate_backward_workspace_bytes<T>(const SigmoidGateArgs<T>&, const T*, \
                                                           const SigmoidGateGrads<T>&);         \
  template void sigmoid_gate_backward<T>(const SigmoidGateArgs<T>&, const T*,                   \
                                         const SigmoidGateGrads<T>&, void*);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
IM_CUDA_INSTANTIATE(bfloat16)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
