// CUDA selective scan, forward and backward (see selective_scan.h for the contract).
//
// Work split (both kernels): block (x, y, z) = (group of channels, sample b, problem).
// A channel e of sample b is owned by kLanes = kN / kS neighbouring threads of a warp,
// each holding kS of the kN states in registers (forward: kS = min(kN, 16), so up to
// N = 16 one thread owns the whole channel; backward: kS = 4). kN is N rounded up to 4, 8,
// 16, 32 or 64; the padded states see A = Bm = Cm = 0 and so stay exactly zero. The
// sequence is walked in chunks of scan steps: the block stages u, delta, inject (and dy)
// of its channels and Bm, Cm of its sample for one chunk in shared memory with cp.async
// (16 bytes at a time where rows allow), then every thread runs the recurrence over the
// chunk from there; outputs go back through the same tiles with coalesced stores.
//
// Forward: chunks of 8 steps, double-buffered (the next chunk loads during this one).
// Backward: sweep 1 runs the recurrence forward and stores the state at each chunk
// boundary (every 16 steps) in the workspace; sweep 2 walks the chunks in reverse scan
// order, recomputes the chunk's states from its boundary state into shared memory (the
// state before each step, per thread) and runs the adjoint recurrence of the CPU
// reference back over them. Reductions: over the states of a channel by warp shuffles;
// dBm/dCm over the channels of a warp by a shuffle reduce-scatter, over the warps of the
// block through shared memory at the end of the chunk, and over blocks by one global
// atomicAdd per (step, n) per block; dA/dD are accumulated per thread across time (per
// chunk in the compute type, across chunks in double) and added with one atomicAdd per
// (e, n) per block.
//
// bfloat16 (T) computes in float (C = compute_t<T>): the tiles of the inputs and outputs
// stay bfloat16 in shared memory (half the copy traffic and smem), each element is widened
// where the recurrence reads it and rounded where an output is written; A, D, the states,
// the recomputed per-step states of the backward chunk and every sum are C (dBm and dCm are
// summed in float in the workspace, then rounded by store_sums_kernel). cp.async has no
// 2-byte form, so bfloat16 moves up to 16 bytes (8 elements) per copy where a row allows and
// falls back to plain loads (ordered by the same barriers) where it does not.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/selective_scan.h"
#include "kernels/scan_delta.h"

namespace im::kernels::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

// Compile-time shape of a kernel for the state bucket kN with kS states per thread.
template <int kN, int kS_>
struct Cfg {
  static_assert(kN == 4 || kN == 8 || kN == 16 || kN == 32 || kN == 64, "state bucket");
  static constexpr int kS = kS_;                                     // states per thread
  static constexpr int kLanes = kN / kS;                             // threads per channel
  static constexpr int kChannels = kLanes == 1 ? 64 : 128 / kLanes;  // channels per block
  static constexpr int kThreads = kChannels * kLanes;                // 64 or 128
};

// Forward: a thread owns up to 16 states (the whole channel for N <= 16), so the per-step
// work shared by a channel's states (tile reads, the reduction of y) is paid once for
// many states. Backward: 4 per thread, which keeps the per-thread states of a chunk small
// enough for shared memory.
template <int kN>
using ForwardCfg = Cfg<kN, (kN < 16 ? kN : 16)>;
template <int kN>
using BackwardCfg = Cfg<kN, 4>;

// Blocks per SM the forward kernel asks registers for: 24 warps when computing in float
// (float32 and bfloat16), so that the small preset's bidirectional grid (B=64, E=768) fits in
// one wave on an H100.
template <typename T, int kN>
constexpr int kForwardMinBlocks = sizeof(compute_t<T>) == 4 ? 768 / ForwardCfg<kN>::kThreads : 1;

constexpr int kForwardChunk = 8;
constexpr int kBackwardChunk = static_cast<int>(kScanBackwardChunk);

// The decay exp(delta A). Float: A is kept pre-scaled by log2(e) and the power of two is
// the hardware's ex2 (about 2 ulp; results below 2^-126 flush to zero, where the state has
// long decayed), as in the reference Mamba kernels. Double: exp of A itself.
__device__ __forceinline__ float scale_a(float a) {
  return a * 1.4426950408889634f;
}
__device__ __forceinline__ double scale_a(double a) {
  return a;
}
__device__ __forceinline__ float decay_of(float de, float a_scaled) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(de * a_scaled));
  return r;
}
__device__ __forceinline__ double decay_of(double de, double a) {
  return exp(de * a);
}

template <typename T, int kN>
struct alignas(sizeof(T) * kN) Pack {  // kN elements moved as one access
  T v[kN];
};

// kS consecutive elements of shared memory, 16 bytes at a time (src 16-byte aligned; for
// bfloat16, kS < 8 reads one kS-element access, src aligned to it), widened to C.
template <int kS, typename T, typename C>
__device__ __forceinline__ void load_vec(const T* src, C (&dst)[kS]) {
  if constexpr (!std::is_same_v<T, C>) {
    constexpr int kV = kS < 8 ? kS : 8;
#pragma unroll
    for (int i = 0; i < kS / kV; ++i) {
      const Pack<T, kV> v = reinterpret_cast<const Pack<T, kV>*>(src)[i];
#pragma unroll
      for (int k = 0; k < kV; ++k) dst[kV * i + k] = convert<C>(v.v[k]);
    }
  } else if constexpr (sizeof(T) == 4 && kS % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kS / 4; ++i) {
      const float4 v = reinterpret_cast<const float4*>(src)[i];
      dst[4 * i] = v.x;
      dst[4 * i + 1] = v.y;
      dst[4 * i + 2] = v.z;
      dst[4 * i + 3] = v.w;
    }
  } else if constexpr (sizeof(T) == 8 && kS % 2 == 0) {
#pragma unroll
    for (int i = 0; i < kS / 2; ++i) {
      const double2 v = reinterpret_cast<const double2*>(src)[i];
      dst[2 * i] = v.x;
      dst[2 * i + 1] = v.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kS; ++i) dst[i] = src[i];
  }
}

template <int kS, typename T>
__device__ __forceinline__ void store_vec(T* dst, const T (&src)[kS]) {
  if constexpr (sizeof(T) == 4 && kS % 4 == 0) {
#pragma unroll
    for (int i = 0; i < kS / 4; ++i)
      reinterpret_cast<float4*>(dst)[i] =
          make_float4(src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]);
  } else if constexpr (sizeof(T) == 8 && kS % 2 == 0) {
#pragma unroll
    for (int i = 0; i < kS / 2; ++i)
      reinterpret_cast<double2*>(dst)[i] = make_double2(src[2 * i], src[2 * i + 1]);
  } else {
#pragma unroll
    for (int i = 0; i < kS; ++i) dst[i] = src[i];
  }
}

__device__ __forceinline__ int64_t time_of(int64_t s, int64_t L, bool reverse) {
  return reverse ? L - 1 - s : s;
}

// Asynchronous copy of kBytes (4, 8 or 16) from global to shared memory (cp.async: no
// register round trip, so a thread has all of its copies in flight at once); with valid
// false it reads nothing and writes zeros. Complete with cp_async_wait<n>() and a barrier.
// 2 bytes (a bfloat16 element; cp.async has no such size) is a plain load and store, which
// the same barrier completes.
template <int kBytes>
__device__ __forceinline__ void cp_async(void* smem, const void* global, bool valid) {
  static_assert(kBytes == 2 || kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async size");
  if constexpr (kBytes == 2) {
    *static_cast<uint16_t*>(smem) = valid ? *static_cast<const uint16_t*>(global) : uint16_t{0};
  } else {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int src_bytes = valid ? kBytes : 0;
    if constexpr (kBytes == 16)
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(global),
                   "r"(src_bytes)
                   : "memory");
    else
      asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(global),
                   "n"(kBytes), "r"(src_bytes)
                   : "memory");
  }
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most kPending of this thread's committed copy groups are in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Elements of T in one 16-byte access.
template <typename T>
constexpr int kVec = 16 / sizeof(T);

// Whether the [.., E] rows of `ptr` can move 16 bytes at a time: E a multiple of kVec<T>
// and the base 16-byte aligned (a tile's first channel e0 is a multiple of kVec<T>).
template <typename T>
__device__ __forceinline__ bool vector_ok(const T* ptr, int64_t E) {
  return E % kVec<T> == 0 && reinterpret_cast<uintptr_t>(ptr) % 16 == 0;
}

// The tiles: tile[j][c] <-> src[b, t(s0 + j), e0 + c] for the chunk's rows j < len and the
// block's channels c < channels, kV channels per access. Thread tid handles channels
// kV (tid % (kCh / kV)) + [0, kV) of rows tid / (kCh / kV) + r * kStep, so consecutive
// threads touch consecutive channels (coalesced) and a row step is a fixed stride.
template <int kRows, int kCh, int kThreads, int kV>
struct TileWalk {
  static constexpr int kPerRow = kCh / kV;  // threads per tile row
  static_assert(kCh % kV == 0 && kThreads % kPerRow == 0, "whole tile rows per pass");
  static constexpr int kStep = kThreads / kPerRow;  // rows per pass
  static constexpr int kPasses = (kRows + kStep - 1) / kStep;
  int c, j0;
  int64_t offset, stride;  // element offset of row j0 in src; offset step per pass
  bool column_ok;
  __device__ __forceinline__ TileWalk(int64_t b, int64_t L, int64_t E, int64_t e0, int channels,
                                      int64_t s0, bool reverse)
      : c((threadIdx.x % kPerRow) * kV), j0(threadIdx.x / kPerRow) {
    offset = (b * L + time_of(s0 + j0, L, reverse)) * E + e0 + c;
    stride = (reverse ? -kStep : kStep) * E;
    column_ok = c < channels;  // with kV > 1, channels is a multiple of kV
  }
  __device__ __forceinline__ bool in_tile(int r) const {
    return kRows % kStep == 0 || j0 + r * kStep < kRows;
  }
  __device__ __forceinline__ bool valid(int r, int len) const {
    return column_ok && j0 + r * kStep < len;
  }
  __device__ __forceinline__ int slot(int r) const { return (j0 + r * kStep) * kCh + c; }
};

template <typename T, int kRows, int kCh, int kThreads, int kV>
__device__ __forceinline__ void load_tile_as(T* tile, const T* src, int64_t b, int64_t L, int64_t E,
                                             int64_t e0, int channels, int64_t s0, int len,
                                             bool reverse) {
  using W = TileWalk<kRows, kCh, kThreads, kV>;
  W w(b, L, E, e0, channels, s0, reverse);
#pragma unroll
  for (int r = 0; r < W::kPasses; ++r) {
    if (w.in_tile(r)) {
      const bool ok = w.valid(r, len);
      cp_async<kV * sizeof(T)>(tile + w.slot(r), ok ? src + w.offset : src, ok);
    }
    w.offset += w.stride;
  }
}

// tile = src over the chunk (asynchronously, see cp_async); 0 outside it and everywhere
// when src is null.
template <typename T, int kRows, int kCh, int kThreads>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int64_t b, int64_t L, int64_t E,
                                          int64_t e0, int channels, int64_t s0, int len,
                                          bool reverse) {
  if (src == nullptr) {
    for (int i = threadIdx.x; i < kRows * kCh; i += kThreads) tile[i] = T{};
  } else if (vector_ok(src, E)) {
    load_tile_as<T, kRows, kCh, kThreads, kVec<T>>(tile, src, b, L, E, e0, channels, s0, len,
                                                   reverse);
  } else {
    load_tile_as<T, kRows, kCh, kThreads, 1>(tile, src, b, L, E, e0, channels, s0, len, reverse);
  }
}

template <typename T, int kRows, int kCh, int kThreads, int kV>
__device__ __forceinline__ void store_tile_as(const T* tile, T* dst, int64_t b, int64_t L,
                                              int64_t E, int64_t e0, int channels, int64_t s0,
                                              int len, bool reverse) {
  using W = TileWalk<kRows, kCh, kThreads, kV>;
  W w(b, L, E, e0, channels, s0, reverse);
#pragma unroll
  for (int r = 0; r < W::kPasses; ++r) {
    if (w.in_tile(r) && w.valid(r, len))
      *reinterpret_cast<Pack<T, kV>*>(dst + w.offset) =
          *reinterpret_cast<const Pack<T, kV>*>(tile + w.slot(r));
    w.offset += w.stride;
  }
}

template <typename T, int kRows, int kCh, int kThreads>
__device__ __forceinline__ void store_tile(const T* tile, T* dst, int64_t b, int64_t L, int64_t E,
                                           int64_t e0, int channels, int64_t s0, int len,
                                           bool reverse) {
  if (vector_ok(dst, E))
    store_tile_as<T, kRows, kCh, kThreads, kVec<T>>(tile, dst, b, L, E, e0, channels, s0, len,
                                                    reverse);
  else
    store_tile_as<T, kRows, kCh, kThreads, 1>(tile, dst, b, L, E, e0, channels, s0, len, reverse);
}

// rows[j][n] = src[b, t(s0 + j), n] for j < len, n < N; 0 elsewhere (the padded states),
// kV states per copy (kV divides N, so a copy is all inside or all outside the row).
template <typename T, int kRows, int kN, int kThreads, int kV>
__device__ __forceinline__ void load_rows_as(T* rows, const T* src, int64_t b, int64_t L, int64_t N,
                                             int64_t s0, int len, bool reverse) {
  constexpr int kPerRow = kN / kV;  // threads per row
  static_assert(kN % kV == 0 && kThreads % kPerRow == 0, "a block covers whole rows per pass");
  constexpr int kStep = kThreads / kPerRow;
  const int n = (threadIdx.x % kPerRow) * kV, j0 = threadIdx.x / kPerRow;
  int64_t offset = (b * L + time_of(s0 + j0, L, reverse)) * N + n;
  const int64_t stride = (reverse ? -kStep : kStep) * N;
#pragma unroll
  for (int r = 0; r < (kRows + kStep - 1) / kStep; ++r) {
    const int j = j0 + r * kStep;
    if (j < kRows) {
      const bool ok = j < len && n < N;
      cp_async<kV * sizeof(T)>(rows + j * kN + n, ok ? src + offset : src, ok);
    }
    offset += stride;
  }
}

// States per copy of a bfloat16 row: up to 16 bytes (2-byte copies are not asynchronous).
// 4- and 8-byte elements copy one state at a time.
template <typename T, int kN>
constexpr int kRowVec = sizeof(T) == 2 ? (kN < 8 ? kN : 8) : 1;

// load_rows_as with kRowVec states per copy where N and src's alignment allow. Issued
// asynchronously (see cp_async).
template <typename T, int kRows, int kN, int kThreads>
__device__ __forceinline__ void load_rows(T* rows, const T* src, int64_t b, int64_t L, int64_t N,
                                          int64_t s0, int len, bool reverse) {
  constexpr int kV = kRowVec<T, kN>;
  if constexpr (kV > 1) {
    if (N % kV == 0 && reinterpret_cast<uintptr_t>(src) % (kV * sizeof(T)) == 0) {
      load_rows_as<T, kRows, kN, kThreads, kV>(rows, src, b, L, N, s0, len, reverse);
      return;
    }
  }
  load_rows_as<T, kRows, kN, kThreads, 1>(rows, src, b, L, N, s0, len, reverse);
}

// Sums over the lanes of a warp that differ in lane bits kMask, 2 kMask, ... 16 (the
// channel groups of a warp; the lower bits select the states). While a lane holds more than
// one value, each round keeps half of them (a reduce-scatter), so it ends holding
// v[0 .. kept) = the warp sums of its original values off .. off + kept; once down to one,
// the remaining rounds are plain all-reduces and leave copies in several lanes.
template <typename T, int kV, int kM, int kMask>
__device__ __forceinline__ void reduce_scatter(T (&v)[kV], int lane, int& off) {
  if constexpr (kMask < 32) {
    const bool upper = (lane & kMask) != 0;
    if constexpr (kM > 1) {
      constexpr int kHalf = kM / 2;
#pragma unroll
      for (int i = 0; i < kHalf; ++i) {
        const T send = upper ? v[i] : v[i + kHalf];
        const T keep = upper ? v[i + kHalf] : v[i];
        v[i] = keep + __shfl_xor_sync(kFullMask, send, kMask);
      }
      if (upper) off += kHalf;
      reduce_scatter<T, kV, kHalf, kMask * 2>(v, lane, off);
    } else {
      v[0] += __shfl_xor_sync(kFullMask, v[0], kMask);
      reduce_scatter<T, kV, 1, kMask * 2>(v, lane, off);
    }
  } else {
    (void)v;
    (void)lane;
    (void)off;
  }
}

constexpr int log2_of(int x) {
  return x <= 1 ? 0 : 1 + log2_of(x / 2);
}

template <typename T>
struct ForwardBatch {
  ScanProblem<T> p[kScanMaxProblems];
};

template <typename T>
struct BackwardBatch {
  ScanBackwardProblem<T> p[kScanMaxProblems];
};

// ---- forward ---------------------------------------------------------------------------

template <typename T, int kN>
__global__ void __launch_bounds__(ForwardCfg<kN>::kThreads, kForwardMinBlocks<T, kN>)
    scan_forward_kernel(const ForwardBatch<T> batch) {
  using Cfg = ForwardCfg<kN>;
  using C = compute_t<T>;
  constexpr int kS = Cfg::kS, kLanes = Cfg::kLanes, kCh = Cfg::kChannels;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int kTc = kForwardChunk;
  // Two buffers (chunk c computes from one while chunk c + 1 loads into the other) of:
  // tiles [kTc][kCh] of u (overwritten with y), delta and inject; Bm, Cm rows [kTc][kN].
  __shared__ __align__(16) T s_u[2][kTc * kCh];
  __shared__ __align__(16) T s_d[2][kTc * kCh];
  __shared__ __align__(16) T s_i[2][kTc * kCh];
  __shared__ __align__(16) T s_b[2][kTc * kN];
  __shared__ __align__(16) T s_c[2][kTc * kN];

  ScanProblem<T> p = batch.p[0];
#pragma unroll
  for (int i = 1; i < kScanMaxProblems; ++i)
    if (blockIdx.z == static_cast<unsigned>(i)) p = batch.p[i];
  const int64_t B = p.dims.batch, L = p.dims.len, E = p.dims.inner, N = p.dims.state;
  const bool rev = p.dims.reverse;
  const int64_t b = blockIdx.y, e0 = int64_t(blockIdx.x) * kCh;
  if (b >= B || e0 >= E || L == 0) return;  // the whole block: no barrier is skipped
  const int channels = static_cast<int>(min(int64_t(kCh), E - e0));
  const int64_t chunks = (L + kTc - 1) / kTc;
  auto load_chunk = [&](int64_t c, int buf) {
    const int64_t s0 = c * kTc;
    const int len = static_cast<int>(min(int64_t(kTc), L - s0));
    load_tile<T, kTc, kCh, kThreads>(s_u[buf], p.u, b, L, E, e0, channels, s0, len, rev);
    load_tile<T, kTc, kCh, kThreads>(s_d[buf], p.delta, b, L, E, e0, channels, s0, len, rev);
    load_tile<T, kTc, kCh, kThreads>(s_i[buf], p.inject, b, L, E, e0, channels, s0, len, rev);
    load_rows<T, kTc, kN, kThreads>(s_b[buf], p.Bm, b, L, N, s0, len, rev);
    load_rows<T, kTc, kN, kThreads>(s_c[buf], p.Cm, b, L, N, s0, len, rev);
    cp_async_commit();
  };
  load_chunk(0, 0);

  const int tid = threadIdx.x;
  const int slice = tid % kLanes, cl = tid / kLanes, n0 = slice * kS;
  const int64_t e = e0 + cl;
  const bool active = cl < channels;
  C a_row[kS];  // A[e, n0 + k], scaled for decay_of; 0 for padded states
#pragma unroll
  for (int k = 0; k < kS; ++k)
    a_row[k] = active && n0 + k < N ? scale_a(p.A[e * N + n0 + k]) : C(0);
  const C d_e = active ? p.D[e] : C(0);
  const C bias_e = active && p.delta_bias != nullptr ? p.delta_bias[e] : C(0);
  const bool softplus = p.dims.softplus_delta;

  C h[kS];
#pragma unroll
  for (int k = 0; k < kS; ++k) h[k] = C(0);
  for (int64_t c = 0; c < chunks; ++c) {
    const int buf = static_cast<int>(c & 1);
    const int64_t s0 = c * kTc;
    const int len = static_cast<int>(min(int64_t(kTc), L - s0));
    if (c + 1 < chunks) {
      load_chunk(c + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T *su = s_u[buf], *sd = s_d[buf], *si = s_i[buf], *sb = s_b[buf], *sc = s_c[buf];
    for (int j = 0; j < len; ++j) {
      const int at = j * kCh + cl;
      const C de = scan_delta(convert<C>(sd[at]), bias_e, softplus), uu = convert<C>(su[at]);
      const C drive = de * (uu + convert<C>(si[at]));
      C bn[kS], cn[kS];
      load_vec<kS>(sb + j * kN + n0, bn);
      load_vec<kS>(sc + j * kN + n0, cn);
      C acc = C(0);
#pragma unroll
      for (int k = 0; k < kS; ++k) {
        h[k] = decay_of(de, a_row[k]) * h[k] + drive * bn[k];
        acc += cn[k] * h[k];
      }
#pragma unroll
      for (int o = 1; o < kLanes; o <<= 1) acc += __shfl_xor_sync(kFullMask, acc, o);
      if constexpr (kLanes > 1) __syncwarp();  // every lane of the channel has read u
      if (slice == 0) s_u[buf][at] = convert<T>(acc + d_e * uu);  // y
    }
    __syncthreads();
    store_tile<T, kTc, kCh, kThreads>(s_u[buf], p.y, b, L, E, e0, channels, s0, len, rev);
    __syncthreads();  // y is out before chunk c + 2 loads into this buffer
  }
}

// ---- backward --------------------------------------------------------------------------

// The workspace's states at chunk boundaries: [B, chunks - 1, E, N].
__host__ __device__ inline int64_t boundary_state_elems(const ScanDims& d) {
  const int64_t chunks = (d.len + kScanBackwardChunk - 1) / kScanBackwardChunk;
  return chunks > 1 ? d.batch * (chunks - 1) * d.inner * d.state : 0;
}

// The workspace's float sums of dBm and dCm (bfloat16 only).
int64_t float_sum_elems(const ScanDims& d) {
  return 2 * d.batch * d.len * d.state;
}

// Where the backward kernel adds the summed gradients: dA and dD (compute type) to the
// outputs; dBm and dCm to the outputs when T is its own compute type, and for bfloat16 to
// float sums in the workspace after the boundary states (so no partial sum is ever rounded),
// which store_sums_kernel rounds to the bfloat16 outputs once the kernel is done.
template <typename C>
struct ScanSums {
  C *dA, *dD, *dBm, *dCm;
};

template <typename T>
__host__ __device__ ScanSums<compute_t<T>> sums_of(const ScanBackwardProblem<T>& p) {
  if constexpr (std::is_same_v<T, compute_t<T>>) {
    return {p.dA, p.dD, p.dBm, p.dCm};
  } else {
    compute_t<T>* dBm = p.workspace + boundary_state_elems(p.dims);
    return {p.dA, p.dD, dBm, dBm + p.dims.batch * p.dims.len * p.dims.state};
  }
}

// The float sums of dBm and dCm (back to back in the workspace) rounded to p's outputs.
template <typename T>
__global__ void store_sums_kernel(const ScanBackwardProblem<T> p) {
  const compute_t<T>* sums = sums_of(p).dBm;
  const int64_t n = p.dims.batch * p.dims.len * p.dims.state;
  IM_GRID_STRIDE_LOOP(i, 2 * n) {
    const T v = convert<T>(sums[i]);
    if (i < n)
      p.dBm[i] = v;
    else
      p.dCm[i - n] = v;
  }
}

// Dynamic shared memory of the backward kernel:
//   states [kTc][kThreads][kS]  (compute type) the state before each step of the chunk, per
//                               thread; once a warp has used its 32 slots of row j, they take
//                               that warp's dBm, dCm terms of step j summed over its
//                               channels [2][kN]
//   Δ [kTc][kCh]                (compute type) the step scan_delta(delta, bias) of the
//                               chunk, computed once per element (the softplus is costly
//                               next to the recurrence, and the tile has kLanes readers)
//   4 tiles [kTc][kCh]          (T) dy, u, delta, inject; overwritten with du, -, ddelta,
//                               dinject
//   Bm, Cm [kTc][kN]            (T)
template <typename T, int kN>
constexpr size_t backward_smem_bytes() {
  using Cfg = BackwardCfg<kN>;
  static_assert(2 * kN <= 32 * Cfg::kS, "a warp's state slots of a row hold its dBm, dCm sums");
  constexpr size_t kTc = kBackwardChunk;
  return sizeof(compute_t<T>) * kTc * (Cfg::kS * Cfg::kThreads + Cfg::kChannels) +
         sizeof(T) * (4 * kTc * Cfg::kChannels + 2 * kTc * kN);
}

template <typename T, int kN>
__global__ void __launch_bounds__(BackwardCfg<kN>::kThreads)
    scan_backward_kernel(const BackwardBatch<T> batch) {
  using Cfg = BackwardCfg<kN>;
  using C = compute_t<T>;
  constexpr int kS = Cfg::kS, kLanes = Cfg::kLanes, kCh = Cfg::kChannels;
  constexpr int kThreads = Cfg::kThreads;
  constexpr int kTc = kBackwardChunk;
  constexpr int kV = 2 * kS;  // the dBm and dCm terms of a thread's states at one step
  constexpr int kRounds = log2_of(32 / kLanes);
  constexpr int kKept = (kV >> kRounds) > 0 ? (kV >> kRounds) : 1;
  constexpr int kWriters = kLanes * kV < 32 ? kLanes * kV : 32;  // lanes holding distinct sums
  extern __shared__ __align__(16) unsigned char smem_raw[];
  C* s_state = reinterpret_cast<C*>(smem_raw);
  C* s_de = s_state + kTc * kS * kThreads;
  T* s_g = reinterpret_cast<T*>(s_de + kTc * kCh);
  T* s_u = s_g + kTc * kCh;
  T* s_d = s_u + kTc * kCh;
  T* s_i = s_d + kTc * kCh;
  T* s_b = s_i + kTc * kCh;
  T* s_c = s_b + kTc * kN;
  // The dBm, dCm sums of warp w at step j: red(w, j)[kind * kN + n], kind 0 = dBm, 1 = dCm.
  auto red = [&](int w, int j) { return s_state + (j * kThreads + w * 32) * kS; };

  ScanBackwardProblem<T> p = batch.p[0];
#pragma unroll
  for (int i = 1; i < kScanMaxProblems; ++i)
    if (blockIdx.z == static_cast<unsigned>(i)) p = batch.p[i];
  const int64_t B = p.dims.batch, L = p.dims.len, E = p.dims.inner, N = p.dims.state;
  const bool rev = p.dims.reverse;
  const int64_t b = blockIdx.y, e0 = int64_t(blockIdx.x) * kCh;
  if (b >= B || e0 >= E || L == 0) return;  // the whole block: no barrier is skipped
  const int channels = static_cast<int>(min(int64_t(kCh), E - e0));
  const int64_t chunks = (L + kTc - 1) / kTc;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int slice = tid % kLanes, cl = tid / kLanes, n0 = slice * kS;
  const int64_t e = e0 + cl;
  const bool active = cl < channels;
  const ScanSums<C> sums = sums_of(p);
  C a_row[kS], a_scaled[kS];  // A[e, n0 + k] as is and scaled for decay_of; 0 when padded
#pragma unroll
  for (int k = 0; k < kS; ++k) {
    a_row[k] = active && n0 + k < N ? p.A[e * N + n0 + k] : C(0);
    a_scaled[k] = scale_a(a_row[k]);
  }
  const C d_e = active ? p.D[e] : C(0);
  const bool softplus = p.dims.softplus_delta;
  // s_de from the delta tile: thread tid fills column tid % kCh (kThreads is a multiple of
  // kCh), rows tid / kCh + r kThreads / kCh, with that column's bias.
  static_assert(kThreads % kCh == 0, "whole tile rows per pass");
  const int de_col = tid % kCh;
  const C de_bias =
      p.delta_bias != nullptr && de_col < channels ? p.delta_bias[e0 + de_col] : C(0);
  auto fill_delta_tile = [&](int rows) {
#pragma unroll 1
    for (int j = tid / kCh; j < rows; j += kThreads / kCh)
      s_de[j * kCh + de_col] = scan_delta(convert<C>(s_d[j * kCh + de_col]), de_bias, softplus);
    __syncthreads();
  };
  // Boundary state c (c >= 1: the state before scan step c * kTc) of this thread.
  auto boundary = [&](int64_t c, int k) -> C& {
    return p.workspace[((b * (chunks - 1) + (c - 1)) * E + e) * N + n0 + k];
  };

  // Sweep 1: the recurrence forward, keeping the state at each chunk boundary.
  C h[kS];
#pragma unroll
  for (int k = 0; k < kS; ++k) h[k] = C(0);
  for (int64_t c = 0; c + 1 < chunks; ++c) {
    const int64_t s0 = c * kTc;
    load_tile<T, kTc, kCh, kThreads>(s_u, p.u, b, L, E, e0, channels, s0, kTc, rev);
    load_tile<T, kTc, kCh, kThreads>(s_d, p.delta, b, L, E, e0, channels, s0, kTc, rev);
    load_tile<T, kTc, kCh, kThreads>(s_i, p.inject, b, L, E, e0, channels, s0, kTc, rev);
    load_rows<T, kTc, kN, kThreads>(s_b, p.Bm, b, L, N, s0, kTc, rev);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    fill_delta_tile(kTc);
    for (int j = 0; j < kTc; ++j) {
      const C de = s_de[j * kCh + cl];
      const C drive = de * (convert<C>(s_u[j * kCh + cl]) + convert<C>(s_i[j * kCh + cl]));
      C bn[kS];
      load_vec<kS>(s_b + j * kN + n0, bn);
#pragma unroll
      for (int k = 0; k < kS; ++k) h[k] = decay_of(de, a_scaled[k]) * h[k] + drive * bn[k];
    }
    if (active) {
#pragma unroll
      for (int k = 0; k < kS; ++k)
        if (n0 + k < N) boundary(c + 1, k) = h[k];
    }
    __syncthreads();
  }

  // Sweep 2: chunks in reverse scan order.
  C carry[kS], h_cur[kS];  // adjoint carried from the next step; the state after the step
  double dA_sum[kS];
  double dD_sum = 0, dbias_sum = 0;
#pragma unroll
  for (int k = 0; k < kS; ++k) {
    carry[k] = C(0);
    dA_sum[k] = 0;
  }
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t s0 = c * kTc;
    const int len = static_cast<int>(min(int64_t(kTc), L - s0));
    __syncthreads();  // the previous chunk's tiles have been written out
    load_tile<T, kTc, kCh, kThreads>(s_g, p.dy, b, L, E, e0, channels, s0, len, rev);
    load_tile<T, kTc, kCh, kThreads>(s_u, p.u, b, L, E, e0, channels, s0, len, rev);
    load_tile<T, kTc, kCh, kThreads>(s_d, p.delta, b, L, E, e0, channels, s0, len, rev);
    load_tile<T, kTc, kCh, kThreads>(s_i, p.inject, b, L, E, e0, channels, s0, len, rev);
    load_rows<T, kTc, kN, kThreads>(s_b, p.Bm, b, L, N, s0, len, rev);
    load_rows<T, kTc, kN, kThreads>(s_c, p.Cm, b, L, N, s0, len, rev);
#pragma unroll
    for (int k = 0; k < kS; ++k) h[k] = c > 0 && active && n0 + k < N ? boundary(c, k) : C(0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    fill_delta_tile(len);

    // Recompute the chunk: the state before step j goes to this thread's slot of row j.
    for (int j = 0; j < len; ++j) {
      const C de = s_de[j * kCh + cl];
      const C drive = de * (convert<C>(s_u[j * kCh + cl]) + convert<C>(s_i[j * kCh + cl]));
      C bn[kS];
      load_vec<kS>(s_b + j * kN + n0, bn);
      store_vec<kS>(s_state + (j * kThreads + tid) * kS, h);
#pragma unroll
      for (int k = 0; k < kS; ++k) h[k] = decay_of(de, a_scaled[k]) * h[k] + drive * bn[k];
    }
#pragma unroll
    for (int k = 0; k < kS; ++k) h_cur[k] = h[k];

    // The adjoint recurrence back over the chunk (kernels/cpu/selective_scan.cpp):
    //   dh = carry + Cm g;  dBm += dh de x;  dCm += g h;  dA += dh de a h_prev;
    //   dx += dh Bm;  ddelta += dh (A a h_prev + Bm x);  carry = a dh.
    C dA_chunk[kS];
    C dD_chunk = C(0), dbias_chunk = C(0);
#pragma unroll
    for (int k = 0; k < kS; ++k) dA_chunk[k] = C(0);
    for (int j = len - 1; j >= 0; --j) {
      const int at = j * kCh + cl;
      const C g = convert<C>(s_g[at]), uu = convert<C>(s_u[at]), de = s_de[at];
      const C x = uu + convert<C>(s_i[at]);
      const C dex = de * x;
      C h_prev[kS], bn[kS], cn[kS], v[kV];
      load_vec<kS>(s_state + (j * kThreads + tid) * kS, h_prev);
      load_vec<kS>(s_b + j * kN + n0, bn);
      load_vec<kS>(s_c + j * kN + n0, cn);
      C dx = C(0), ddelta = C(0);
#pragma unroll
      for (int k = 0; k < kS; ++k) {
        const C a = decay_of(de, a_scaled[k]);
        const C dh = carry[k] + cn[k] * g;  // total adjoint of this step's state
        const C ah = a * h_prev[k];
        v[k] = dh * dex;           // dBm term
        v[kS + k] = g * h_cur[k];  // dCm term
        dA_chunk[k] += de * (dh * ah);
        dx += dh * bn[k];
        ddelta += dh * (a_row[k] * ah + bn[k] * x);
        carry[k] = a * dh;
        h_cur[k] = h_prev[k];
      }
#pragma unroll
      for (int o = 1; o < kLanes; o <<= 1) {
        dx += __shfl_xor_sync(kFullMask, dx, o);
        ddelta += __shfl_xor_sync(kFullMask, ddelta, o);
      }
      dD_chunk += g * uu;
      // Back through the bias and softplus to the given delta (the bias gets the same).
      ddelta *= scan_delta_slope_from_step(de, softplus);
      dbias_chunk += ddelta;

      int off = 0;
      reduce_scatter<C, kV, kV, kLanes>(v, lane, off);
      __syncwarp();           // the warp has read its states and this step's tile entries
      if (lane < kWriters) {  // together they hold each (kind, n) sum exactly once
        C* warp_sums = red(warp, j);
#pragma unroll
        for (int i = 0; i < kKept; ++i) {
          const int q = off + i;  // q < kS: dBm term of state n0 + q; else dCm of n0 + q - kS
          warp_sums[(q / kS) * kN + n0 + q % kS] = v[i];
        }
      }
      if (slice == 0) {
        const C dxe = dx * de;
        s_g[at] = convert<T>(g * d_e + dxe);  // du
        s_d[at] = convert<T>(ddelta);
        s_i[at] = convert<T>(dxe);  // dinject
      }
    }
#pragma unroll
    for (int k = 0; k < kS; ++k) dA_sum[k] += static_cast<double>(dA_chunk[k]);
    dD_sum += static_cast<double>(dD_chunk);
    dbias_sum += static_cast<double>(dbias_chunk);
    __syncthreads();

    store_tile<T, kTc, kCh, kThreads>(s_g, p.du, b, L, E, e0, channels, s0, len, rev);
    store_tile<T, kTc, kCh, kThreads>(s_d, p.ddelta, b, L, E, e0, channels, s0, len, rev);
    if (p.dinject != nullptr)
      store_tile<T, kTc, kCh, kThreads>(s_i, p.dinject, b, L, E, e0, channels, s0, len, rev);
    for (int i = tid; i < len * 2 * kN; i += kThreads) {
      const int j = i / (2 * kN), which = (i / kN) % 2, n = i % kN;
      if (n < N) {
        C sum = red(0, j)[which * kN + n];
#pragma unroll
        for (int w = 1; w < kThreads / 32; ++w) sum += red(w, j)[which * kN + n];
        C* dst = which == 0 ? sums.dBm : sums.dCm;
        atomicAdd(&dst[(b * L + time_of(s0 + j, L, rev)) * N + n], sum);
      }
    }
  }

  if (active) {
#pragma unroll
    for (int k = 0; k < kS; ++k)
      if (n0 + k < N) atomicAdd(&sums.dA[e * N + n0 + k], static_cast<C>(dA_sum[k]));
    if (slice == 0) atomicAdd(&sums.dD[e], static_cast<C>(dD_sum));
    if (slice == 0 && p.ddelta_bias != nullptr)
      atomicAdd(&p.ddelta_bias[e], static_cast<C>(dbias_sum));
  }
}

// ---- launches --------------------------------------------------------------------------

int state_bucket(int64_t N, const char* what) {
  if (N < 0 || N > kScanMaxState)
    throw std::runtime_error(std::string(what) + ": state size N = " + std::to_string(N) +
                             " is outside the CUDA kernel's range 0.." +
                             std::to_string(kScanMaxState));
  return N <= 4 ? 4 : N <= 8 ? 8 : N <= 16 ? 16 : N <= 32 ? 32 : 64;
}

void check_dims(const ScanDims& d, const char* what) {
  if (d.batch < 0 || d.len < 0 || d.inner < 0)
    throw std::runtime_error(std::string(what) + ": negative dims");
  if (d.batch > 65535)
    throw std::runtime_error(std::string(what) + ": batch " + std::to_string(d.batch) +
                             " exceeds the CUDA kernel's limit of 65535 samples per launch");
  state_bucket(d.state, what);
}

bool has_work(const ScanDims& d) {
  return d.batch > 0 && d.len > 0 && d.inner > 0;
}

template <typename C, typename Batch>
dim3 grid_of(const Batch& batch, int count) {
  int64_t blocks_e = 1, blocks_b = 1;
  for (int i = 0; i < count; ++i) {
    blocks_e = std::max(blocks_e, (batch.p[i].dims.inner + C::kChannels - 1) / C::kChannels);
    blocks_b = std::max(blocks_b, batch.p[i].dims.batch);
  }
  return dim3(static_cast<unsigned>(blocks_e), static_cast<unsigned>(blocks_b),
              static_cast<unsigned>(count));
}

template <typename T, int kN>
void launch_forward(const ForwardBatch<T>& batch, int count) {
  using C = ForwardCfg<kN>;
  scan_forward_kernel<T, kN><<<grid_of<C>(batch, count), C::kThreads, 0, stream()>>>(batch);
  check_last_launch("selective scan forward kernel");
}

template <typename T, int kN>
void launch_backward(const BackwardBatch<T>& batch, int count) {
  constexpr size_t smem = backward_smem_bytes<T, kN>();
  if (smem > 48 * 1024)
    check_cuda(
        cudaFuncSetAttribute(scan_backward_kernel<T, kN>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
        "selective scan backward: shared memory size");
  using C = BackwardCfg<kN>;
  scan_backward_kernel<T, kN><<<grid_of<C>(batch, count), C::kThreads, smem, stream()>>>(batch);
  check_last_launch("selective scan backward kernel");
}

// Runs `problems` (all with work) grouped by state bucket, kScanMaxProblems per launch.
template <typename Batch, typename P, typename Launch>
void launch_grouped(const std::vector<P>& problems, const char* what, Launch&& launch) {
  std::vector<bool> done(problems.size(), false);
  for (size_t i = 0; i < problems.size(); ++i) {
    if (done[i]) continue;
    const int bucket = state_bucket(problems[i].dims.state, what);
    Batch batch{};
    int count = 0;
    for (size_t j = i; j < problems.size() && count < kScanMaxProblems; ++j) {
      if (done[j] || state_bucket(problems[j].dims.state, what) != bucket) continue;
      batch.p[count++] = problems[j];
      done[j] = true;
    }
    launch(bucket, batch, count);
  }
}

// Calls f.template operator()<N>() for a state bucket (N rounded up to 4, 8, 16, 32, 64).
template <typename F>
void with_state_bucket(int bucket, F&& f) {
  switch (bucket) {
    case 4:
      return f.template operator()<4>();
    case 8:
      return f.template operator()<8>();
    case 16:
      return f.template operator()<16>();
    case 32:
      return f.template operator()<32>();
    default:
      return f.template operator()<64>();
  }
}

template <typename T>
void memset_zero(T* ptr, int64_t elems, const char* what) {  // a null ptr: nothing wanted
  if (elems > 0 && ptr != nullptr) check_cuda(cudaMemsetAsync(ptr, 0, sizeof(T) * size_t(elems), stream()), what);
}

// dA, dD and dBm, dCm (R: the outputs' type, or their sums') to zero.
template <typename C, typename R>
void zero_sums(C* dA, C* dD, R* dBm, R* dCm, const ScanDims& d) {
  memset_zero(dA, d.inner * d.state, "selective scan backward: zeroing dA");
  memset_zero(dD, d.inner, "selective scan backward: zeroing dD");
  memset_zero(dBm, d.batch * d.len * d.state, "selective scan backward: zeroing dBm");
  memset_zero(dCm, d.batch * d.len * d.state, "selective scan backward: zeroing dCm");
}

}  // namespace

template <typename T>
int64_t selective_scan_workspace_elems(const ScanDims& d) {
  const int64_t states = boundary_state_elems(d);
  return std::is_same_v<T, compute_t<T>> ? states : states + float_sum_elems(d);
}

template <typename T>
void selective_scan_multi(const ScanProblem<T>* problems, int count) {
  constexpr const char* kWhat = "CUDA selective_scan";
  std::vector<ScanProblem<T>> work;
  for (int i = 0; i < count; ++i) {
    check_dims(problems[i].dims, kWhat);
    if (has_work(problems[i].dims)) work.push_back(problems[i]);
  }
  launch_grouped<ForwardBatch<T>>(work, kWhat, [](int bucket, const ForwardBatch<T>& batch, int n) {
    with_state_bucket(bucket, [&]<int N>() { launch_forward<T, N>(batch, n); });
  });
}

template <typename T>
void selective_scan_backward_multi(const ScanBackwardProblem<T>* problems, int count) {
  constexpr const char* kWhat = "CUDA selective_scan_backward";
  std::vector<ScanBackwardProblem<T>> work;
  for (int i = 0; i < count; ++i) {
    const ScanBackwardProblem<T>& p = problems[i];
    const ScanDims& d = p.dims;
    check_dims(d, kWhat);
    if (!has_work(d)) {  // nothing to sum: the summed gradients are zero
      zero_sums(p.dA, p.dD, p.dBm, p.dCm, d);
      memset_zero(p.ddelta_bias, d.inner, "selective scan backward: zeroing the delta bias gradient");
      continue;
    }
    const int64_t ws = selective_scan_workspace_elems<T>(d);
    if (ws > 0 && p.workspace == nullptr)
      throw std::runtime_error(std::string(kWhat) + ": workspace of " + std::to_string(ws) +
                               " elements is null");
    const ScanSums<compute_t<T>> sums = sums_of(p);  // added with atomics: start at zero
    zero_sums(sums.dA, sums.dD, sums.dBm, sums.dCm, d);
    memset_zero(p.ddelta_bias, d.inner, "selective scan backward: zeroing the delta bias gradient");
    work.push_back(p);
  }
  launch_grouped<BackwardBatch<T>>(
      work, kWhat, [](int bucket, const BackwardBatch<T>& batch, int n) {
        with_state_bucket(bucket, [&]<int N>() { launch_backward<T, N>(batch, n); });
      });
  if constexpr (!std::is_same_v<T, compute_t<T>>) {
    for (const ScanBackwardProblem<T>& p : work) {
      const int64_t n = float_sum_elems(p.dims);
      store_sums_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(p);
      check_last_launch("selective scan backward: storing dA, dD, dBm, dCm");
    }
  }
}

template <typename T>
void selective_scan(const T* u, const T* delta, const compute_t<T>* A, const T* Bm, const T* Cm,
                    const compute_t<T>* D, const T* inject, T* y, const ScanDims& d) {
  ScanProblem<T> p;
  p.u = u;
  p.delta = delta;
  p.A = A;
  p.Bm = Bm;
  p.Cm = Cm;
  p.D = D;
  p.inject = inject;
  p.y = y;
  p.dims = d;
  selective_scan_multi(&p, 1);
}

template <typename T>
void selective_scan_backward(const T* dy, const T* u, const T* delta, const compute_t<T>* A,
                             const T* Bm, const T* Cm, const compute_t<T>* D, const T* inject,
                             T* du, T* ddelta, compute_t<T>* dA, T* dBm, T* dCm, compute_t<T>* dD,
                             T* dinject, compute_t<T>* workspace, const ScanDims& d) {
  ScanBackwardProblem<T> p;
  p.dy = dy;
  p.u = u;
  p.delta = delta;
  p.A = A;
  p.Bm = Bm;
  p.Cm = Cm;
  p.D = D;
  p.inject = inject;
  p.du = du;
  p.ddelta = ddelta;
  p.dA = dA;
  p.dBm = dBm;
  p.dCm = dCm;
  p.dD = dD;
  p.dinject = dinject;
  p.workspace = workspace;
  p.dims = d;
  selective_scan_backward_multi(&p, 1);
}

#define IM_SCAN_INSTANTIATE(T)                                                                     \
  template int64_t selective_scan_workspace_elems<T>(const ScanDims&);                             \
  template void selective_scan<T>(const T*, const T*, const compute_t<T>*, const T*, const T*,     \
                                  const compute_t<T>*, const T*, T*, const ScanDims&);             \
  template void selective_scan_backward<T>(                                                        \
      const T*, const T*, const T*, const compute_t<T>*, const T*, const T*, const compute_t<T>*,  \
      const T*, T*, T*, compute_t<T>*, T*, T*, compute_t<T>*, T*, compute_t<T>*, const ScanDims&); \
  template void selective_scan_multi<T>(const ScanProblem<T>*, int);                               \
  template void selective_scan_backward_multi<T>(const ScanBackwardProblem<T>*, int);
IM_SCAN_INSTANTIATE(float)
IM_SCAN_INSTANTIATE(double)
IM_SCAN_INSTANTIATE(bfloat16)

}  // namespace im::kernels::cuda
