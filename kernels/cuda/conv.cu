// CUDA convolutions. conv2d is im2col + GEMM (cuBLAS through kernels/cuda/gemm.h), the
// same lowering as the CPU reference. cuDNN (cudnnConvolutionForward /
// BackwardData / BackwardFilter, NCHW, CUDNN_CROSS_CORRELATION) could replace
// conv2d and conv2d_backward behind the same signatures; for the model's patch embedding
// (kernel = stride = patch, padding 0) im2col is a pure permutation and the GEMM does
// all the work, so the lowering should be close to it. To be measured.
//
// bfloat16 (T) is storage: every kernel widens what it reads to C = compute_t<T> (float) or
// to double, sums there and rounds once on store; the GEMMs take bfloat16 operands with
// float accumulation (kernels/cuda/gemm.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/elementwise_ops.h"

namespace im::kernels::cuda {

namespace {

// ---- causal depthwise conv1d ------------------------------------------------------------
//
// x [B, L, C] is read through its row strides (channels contiguous); y, g and dx are
// contiguous. Every kernel walks the causal recurrence's steps p = 0..L-1 of a sequence;
// step p is time p, or L-1-p with reverse, so the anti-causal direction needs no flipped
// copies. The fast kernels (K <= kFastTaps) give each thread kV channels (one 16-byte
// access where the layout allows) of a chunk of ~kChunkSteps steps of one sequence and
// keep the K-1 previous steps in registers: x and g are read from memory about once.

// The launch's scalars.
struct DwArgs {
  int64_t x_batch_stride = 0, x_row_stride = 0;
  int64_t items = 0;  // (sequence, chunk) pairs the fast kernels' threads take
  int len = 0, channels = 0, ksize = 0;
  int chunks = 1;  // chunks per sequence
  bool reverse = false;
};

__device__ __forceinline__ int64_t dw_time(const DwArgs& a, int64_t p) {
  return a.reverse ? a.len - 1 - p : p;
}

// First step of chunk k of a sequence (chunks differ by at most one step in length).
__device__ __forceinline__ int dw_chunk_begin(const DwArgs& a, int k) {
  return static_cast<int>(static_cast<int64_t>(k) * a.len / a.chunks);
}

constexpr int kFastTaps = 8;     // longer filters take the one-thread-per-element kernels
constexpr int kChunkSteps = 16;  // steps a thread of the fast kernels walks (about)
constexpr int kTileVecs = 32;    // threadIdx.x: the channel vectors of a block
constexpr int kFwdChunksY = 8;   // threadIdx.y: chunks of a forward block
// threadIdx.y of a backward block; its chunks make one partial sum of dw and dbias.
constexpr int kBwdChunksY = 16;
// Partial sums (blocks along the rows) the fast backward aims at most for: more rows per
// block then, fewer partial sums to write and add up.
constexpr int64_t kMaxBwdParts = 64;

// Channels a thread of the fast forward takes: one 16-byte access.
template <typename T>
constexpr int kDwVec = 16 / static_cast<int>(sizeof(T));
// Channels a thread of the fast backward takes: 16 bytes, but 8 (4 channels) for bfloat16,
// whose 8 channels in float (the dw sums, the gs window, the weights) would not fit in the
// 128 registers a 512-thread block leaves each thread (they spilled). A warp still reads
// whole 32-byte sectors.
template <typename T>
constexpr int kDwBwdVec = sizeof(T) == 2 ? 4 : kDwVec<T>;

template <typename T, int kV>
struct alignas(sizeof(T) * kV) DwPack {  // kV channels of one row, moved as one access
  T v[kV];
};

// kV elements at p (aligned to the pack) in one access through the read-only path.
template <int kV, typename T>
__device__ __forceinline__ DwPack<T, kV> load_pack(const T* p) {
  constexpr int kBytes = static_cast<int>(sizeof(T)) * kV;
  DwPack<T, kV> out;
  if constexpr (kBytes == 16) {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    memcpy(&out, &u, kBytes);
  } else if constexpr (kBytes == 8) {
    const uint2 u = __ldg(reinterpret_cast<const uint2*>(p));
    memcpy(&out, &u, kBytes);
  } else if constexpr (kBytes == 4) {
    const unsigned u = __ldg(reinterpret_cast<const unsigned*>(p));
    memcpy(&out, &u, kBytes);
  } else {
    static_assert(kBytes == 2, "a pack is 2, 4, 8 or 16 bytes");
    const unsigned short u = __ldg(reinterpret_cast<const unsigned short*>(p));
    memcpy(&out, &u, kBytes);
  }
  return out;
}

// v rounded to T once and stored as one access.
template <int kV, typename T, typename C>
__device__ __forceinline__ void store_pack(T* p, const C (&v)[kV]) {
  DwPack<T, kV> out;
#pragma unroll
  for (int k = 0; k < kV; ++k) out.v[k] = convert<T>(v[k]);
  constexpr int kBytes = static_cast<int>(sizeof(T)) * kV;
  if constexpr (kBytes == 16) {
    uint4 u;
    memcpy(&u, &out, kBytes);
    *reinterpret_cast<uint4*>(p) = u;
  } else if constexpr (kBytes == 8) {
    uint2 u;
    memcpy(&u, &out, kBytes);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
    *reinterpret_cast<DwPack<T, kV>*>(p) = out;
  }
}

template <typename C, int kV, typename T>
__device__ __forceinline__ C pack_at(const DwPack<T, kV>& p, int k) {
  return convert<C>(p.v[k]);
}

// wd[d][k] = w[c+k, K-1-d]: the weight of the input d steps back; 0 for d >= K.
template <int kMaxK, int kV, typename T, typename C>
__device__ __forceinline__ void load_taps(const T* w, int c, int ksize, C (&wd)[kMaxK][kV]) {
#pragma unroll
  for (int d = 0; d < kMaxK; ++d)
#pragma unroll
    for (int k = 0; k < kV; ++k)
      wd[d][k] = d < ksize ? convert<C>(w[(c + k) * ksize + ksize - 1 - d]) : C(0);
}

// The pre-activation at the step held in window slot `slot` (inputs d steps back in slot -
// d): bias, then the taps j = K-1-d in ascending j, the CPU kernel's order.
template <int kMaxK, int kV, typename T, typename C>
__device__ __forceinline__ void window_conv(const C (&wd)[kMaxK][kV], const C (&bv)[kV],
                                            const DwPack<T, kV>* window, int ksize, C (&s)[kV]) {
#pragma unroll
  for (int k = 0; k < kV; ++k) s[k] = bv[k];
#pragma unroll
  for (int d = kMaxK - 1; d >= 0; --d)
    if (d < ksize)
#pragma unroll
      for (int k = 0; k < kV; ++k) s[k] += wd[d][k] * pack_at<C>(window[-d], k);
}

// Forward: each thread takes channels c..c+kV-1 of chunks item = blockIdx.y*kFwdChunksY +
// threadIdx.y (+ the grid's stride) and walks their steps kU at a time: it loads kU rows
// (all in flight together), then computes and stores kU outputs from the window of the
// last kMaxK-1 + kU inputs.
template <typename T, int kV, int kMaxK, bool kSilu>
__global__ void __launch_bounds__(kTileVecs* kFwdChunksY)
    dwconv1d_forward_fast_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                 const T* __restrict__ bias, T* __restrict__ y, DwArgs a) {
  using C = compute_t<T>;
  constexpr int kU = 4;          // steps loaded at once
  constexpr int kH = kMaxK - 1;  // window slots before the current steps
  const int c = (blockIdx.x * kTileVecs + threadIdx.x) * kV;
  if (c >= a.channels) return;  // with kV > 1 the channel count is a multiple of kV
  C wd[kMaxK][kV], bv[kV];
  load_taps<kMaxK, kV>(w, c, a.ksize, wd);
#pragma unroll
  for (int k = 0; k < kV; ++k) bv[k] = bias ? convert<C>(bias[c + k]) : C(0);
  const DwPack<T, kV> zero{};
  for (int64_t item = static_cast<int64_t>(blockIdx.y) * kFwdChunksY + threadIdx.y; item < a.items;
       item += static_cast<int64_t>(gridDim.y) * kFwdChunksY) {
    const int64_t b = item / a.chunks;
    const int chunk = static_cast<int>(item % a.chunks);
    const int p0 = dw_chunk_begin(a, chunk), p1 = dw_chunk_begin(a, chunk + 1);
    const T* xb = x + b * a.x_batch_stride + c;
    T* yb = y + b * a.len * a.channels + c;
    DwPack<T, kV> xw[kH + kU];  // xw[i]: the input at step p - kH + i
#pragma unroll
    for (int i = 0; i < kH; ++i) {
      const int d = kH - i;
      xw[i] =
          d < a.ksize && p0 >= d ? load_pack<kV>(xb + dw_time(a, p0 - d) * a.x_row_stride) : zero;
    }
    for (int p = p0; p < p1; p += kU) {
#pragma unroll
      for (int u = 0; u < kU; ++u)
        xw[kH + u] = p + u < p1 ? load_pack<kV>(xb + dw_time(a, p + u) * a.x_row_stride) : zero;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        if (p + u >= p1) continue;
        C s[kV];
        window_conv<kMaxK, kV>(wd, bv, xw + kH + u, a.ksize, s);
        if constexpr (kSilu) {
#pragma unroll
          for (int k = 0; k < kV; ++k) s[k] = unary_forward<C>(UnaryOp::Silu, {}, s[k]);
        }
        store_pack<kV>(yb + dw_time(a, p + u) * a.channels, s);
      }
#pragma unroll
      for (int i = 0; i < kH; ++i) xw[i] = xw[i + kU];
    }
  }
}

// ws[tap * channels + c0 + i] = the sum over threadIdx.y of vals (thread (x, y) holding
// channels c0 + kV x + [0, kV)), added in double in a fixed order. Every thread calls it.
template <int kV, int kRowsY, typename C>
__device__ __forceinline__ void block_sum_to(C (*red)[kTileVecs * kV], const C (&vals)[kV],
                                             double* ws, int64_t tap, int c0, int channels) {
#pragma unroll
  for (int k = 0; k < kV; ++k) red[threadIdx.y][threadIdx.x * kV + k] = vals[k];
  __syncthreads();
  const int i = threadIdx.y * kTileVecs + threadIdx.x;
  if (i < kTileVecs * kV && c0 + i < channels) {
    double s = 0;
#pragma unroll
    for (int r = 0; r < kRowsY; ++r) s += static_cast<double>(red[r][i]);
    ws[tap * channels + c0 + i] = s;
  }
  __syncthreads();  // red is rewritten by the next call
}

// Backward, one pass: per step q the gradient at the pre-activation gs_q = g_q (or
// g_q SiLU'(s_q), s_q recomputed from the window of inputs), dbias += gs_q, dw_j += gs_q
// x_{q-d} (d = K-1-j), and dx at step r = q - (kMaxK-1), whose taps read gs_r .. gs_{r+K-1}
// (all in the gs window by then): dx_r = sum_d wd[d] gs_{r+d}. A thread's chunk [p0, p1)
// reads g up to p1+K-2 (dx) and x from p0-K+1 (dw; with SiLU up to p1+K-2 too). Each
// block then writes its partial sums of dw and dbias to ws[blockIdx.y][tap][c].
template <typename T, int kV, int kMaxK, bool kSilu>
__global__ void __launch_bounds__(kTileVecs* kBwdChunksY)
    dwconv1d_backward_fast_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                  const T* __restrict__ w, const T* __restrict__ bias,
                                  T* __restrict__ dx, double* __restrict__ ws, DwArgs a,
                                  bool want_dw, bool want_db) {
  using C = compute_t<T>;
  constexpr int kU = kMaxK > 4 ? 2 : 4;  // steps loaded at once (fewer: registers)
  constexpr int kH = kMaxK - 1;          // window slots before the current steps
  const int c = (blockIdx.x * kTileVecs + threadIdx.x) * kV;
  C dwacc[kMaxK][kV] = {}, dbacc[kV] = {};  // dwacc[d]: tap K-1-d
  if (c < a.channels) {
    C wd[kMaxK][kV], bv[kV];
    load_taps<kMaxK, kV>(w, c, a.ksize, wd);
#pragma unroll
    for (int k = 0; k < kV; ++k) bv[k] = kSilu && bias ? convert<C>(bias[c + k]) : C(0);
    const bool want_dx = dx != nullptr;
    const bool x_history = kSilu || want_dw;
    const DwPack<T, kV> zero{};
    for (int64_t item = static_cast<int64_t>(blockIdx.y) * kBwdChunksY + threadIdx.y;
         item < a.items; item += static_cast<int64_t>(gridDim.y) * kBwdChunksY) {
      const int64_t b = item / a.chunks;
      const int chunk = static_cast<int>(item % a.chunks);
      const int p0 = dw_chunk_begin(a, chunk), p1 = dw_chunk_begin(a, chunk + 1);
      // Steps whose gs is needed (dx reads K-1 past the chunk), whose x is read, and the
      // walk's end (dx of step r is written at step r + kH).
      const int g_end = want_dx ? min(p1 + a.ksize - 1, a.len) : p1;
      const int x_end = kSilu ? g_end : (want_dw ? p1 : p0);
      const int p_end = want_dx ? p1 + kH : p1;
      const T* xb = x + b * a.x_batch_stride + c;
      const T* gb = g + b * a.len * a.channels + c;
      T* dxb = want_dx ? dx + b * a.len * a.channels + c : nullptr;
      DwPack<T, kV> xw[kH + kU];  // xw[i], gw[i]: x and gs at step p - kH + i
      C gw[kH + kU][kV];
#pragma unroll
      for (int i = 0; i < kH; ++i) {
        const int d = kH - i;
        xw[i] = x_history && d < a.ksize && p0 >= d
                    ? load_pack<kV>(xb + dw_time(a, p0 - d) * a.x_row_stride)
                    : zero;
#pragma unroll
        for (int k = 0; k < kV; ++k) gw[i][k] = C(0);  // steps before p0 feed no stored dx
      }
      for (int p = p0; p < p_end; p += kU) {
        DwPack<T, kV> gr[kU];
#pragma unroll
        for (int u = 0; u < kU; ++u) {
          xw[kH + u] =
              p + u < x_end ? load_pack<kV>(xb + dw_time(a, p + u) * a.x_row_stride) : zero;
          gr[u] = p + u < g_end ? load_pack<kV>(gb + dw_time(a, p + u) * a.channels) : zero;
        }
#pragma unroll
        for (int u = 0; u < kU; ++u) {
          const int q = p + u;
          C* gs = gw[kH + u];
          if (q < g_end) {
            if constexpr (kSilu) {
              C s[kV];
              window_conv<kMaxK, kV>(wd, bv, xw + kH + u, a.ksize, s);
#pragma unroll
              for (int k = 0; k < kV; ++k)
                gs[k] = unary_backward<C>(UnaryOp::Silu, {}, pack_at<C>(gr[u], k), s[k], C(0));
            } else {
#pragma unroll
              for (int k = 0; k < kV; ++k) gs[k] = pack_at<C>(gr[u], k);
            }
          } else {
#pragma unroll
            for (int k = 0; k < kV; ++k) gs[k] = C(0);
          }
          if (q < p1) {
#pragma unroll
            for (int k = 0; k < kV; ++k) dbacc[k] += gs[k];
#pragma unroll
            for (int d = 0; d < kMaxK; ++d)
              if (d < a.ksize)
#pragma unroll
                for (int k = 0; k < kV; ++k) dwacc[d][k] += gs[k] * pack_at<C>(xw[kH + u - d], k);
          }
          const int r = q - kH;
          if (want_dx && r >= p0 && r < p1) {
            // Taps in the CPU kernel's order: the outputs r+d that read x_r, ascending.
            C acc[kV];
#pragma unroll
            for (int k = 0; k < kV; ++k) acc[k] = C(0);
#pragma unroll
            for (int d = 0; d < kMaxK; ++d)
              if (d < a.ksize)
#pragma unroll
                for (int k = 0; k < kV; ++k) acc[k] += wd[d][k] * gw[u + d][k];
            store_pack<kV>(dxb + dw_time(a, r) * a.channels, acc);
          }
        }
#pragma unroll
        for (int i = 0; i < kH; ++i) {
          xw[i] = xw[i + kU];
#pragma unroll
          for (int k = 0; k < kV; ++k) gw[i][k] = gw[i + kU][k];
        }
      }
    }
  }
  if (!want_dw && !want_db) return;  // the same for the whole block
  __shared__ C red[kBwdChunksY][kTileVecs * kV];
  const int c0 = blockIdx.x * kTileVecs * kV;
  double* part = ws + static_cast<int64_t>(blockIdx.y) * (a.ksize + 1) * a.channels;
  if (want_dw) {
#pragma unroll
    for (int d = 0; d < kMaxK; ++d)
      if (d < a.ksize)
        block_sum_to<kV, kBwdChunksY>(red, dwacc[d], part, a.ksize - 1 - d, c0, a.channels);
  }
  if (want_db) block_sum_to<kV, kBwdChunksY>(red, dbacc, part, a.ksize, c0, a.channels);
}

// dw[c, tap] (tap < K) or dbias[c] (tap == K) = the sum over parts of ws[part][tap][c]:
// threadIdx.y takes every kFinishY-th part, then the kFinishY sums are added in order.
constexpr int kFinishY = 8;

template <typename T>
__global__ void dwconv1d_param_finish_kernel(const double* __restrict__ ws, T* dw, T* dbias,
                                             int channels, int ksize, int tap_begin,
                                             int64_t parts) {
  __shared__ double partial[kFinishY][kTileVecs];
  const int c = blockIdx.x * kTileVecs + threadIdx.x;
  const int tap = tap_begin + blockIdx.y;
  double s = 0;
  if (c < channels)
    for (int64_t p = threadIdx.y; p < parts; p += kFinishY)
      s += ws[(p * (ksize + 1) + tap) * channels + c];
  partial[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    double t = 0;
#pragma unroll
    for (int k = 0; k < kFinishY; ++k) t += partial[k][threadIdx.x];
    if (tap < ksize) {
      dw[static_cast<int64_t>(c) * ksize + tap] = convert<T>(t);
    } else {
      dbias[c] = convert<T>(t);
    }
  }
}

// ---- long filters (K > kFastTaps): one thread per element ------------------------------

// The pre-activation at step p of sequence b, channel c (taps in the CPU kernel's order).
template <typename T>
__device__ compute_t<T> dw_pre_activation(const T* x, const T* w, const T* bias, const DwArgs& a,
                                          int64_t b, int64_t p, int c) {
  using C = compute_t<T>;
  C acc = bias ? convert<C>(bias[c]) : C(0);
  const T* xb = x + b * a.x_batch_stride + c;
  const T* wc = w + static_cast<int64_t>(c) * a.ksize;
  // Taps that would read before step 0 see the zero padding and are skipped.
  for (int64_t j = a.ksize - 1 - p > 0 ? a.ksize - 1 - p : 0; j < a.ksize; ++j)
    acc += convert<C>(wc[j]) * convert<C>(xb[dw_time(a, p - a.ksize + 1 + j) * a.x_row_stride]);
  return acc;
}

// The gradient at the pre-activation, step p of sequence b, channel c.
template <typename T, bool kSilu>
__device__ compute_t<T> dw_pre_gradient(const T* g, const T* x, const T* w, const T* bias,
                                        const DwArgs& a, int64_t b, int64_t p, int c) {
  using C = compute_t<T>;
  const C gv = convert<C>(g[(b * a.len + dw_time(a, p)) * a.channels + c]);
  if constexpr (kSilu) {
    return unary_backward<C>(UnaryOp::Silu, {}, gv, dw_pre_activation(x, w, bias, a, b, p, c),
                             C(0));
  } else {
    return gv;
  }
}

// y[i] for i over the contiguous [B, L, C] output.
template <typename T, bool kSilu>
__global__ void dwconv1d_forward_generic_kernel(const T* x, const T* w, const T* bias, T* y,
                                                DwArgs a, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int c = static_cast<int>(i % a.channels);
    const int64_t t = (i / a.channels) % a.len, b = i / (static_cast<int64_t>(a.channels) * a.len);
    // Time t is step dw_time(a, t): the mapping is its own inverse.
    const C s = dw_pre_activation(x, w, bias, a, b, dw_time(a, t), c);
    y[i] = convert<T>(kSilu ? unary_forward<C>(UnaryOp::Silu, {}, s) : s);
  }
}

// dx at step r = sum_d w[c, K-1-d] gs_{r+d} over the steps before L, d ascending (the CPU
// kernel's order of the outputs that read x_r).
template <typename T, bool kSilu>
__global__ void dwconv1d_backward_dx_generic_kernel(const T* g, const T* x, const T* w,
                                                    const T* bias, T* dx, DwArgs a, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int c = static_cast<int>(i % a.channels);
    const int64_t t = (i / a.channels) % a.len, b = i / (static_cast<int64_t>(a.channels) * a.len);
    const int64_t r = dw_time(a, t);
    C acc = C(0);
    for (int64_t d = 0; d < a.ksize && r + d < a.len; ++d)
      acc += convert<C>(w[static_cast<int64_t>(c) * a.ksize + a.ksize - 1 - d]) *
             dw_pre_gradient<T, kSilu>(g, x, w, bias, a, b, r + d, c);
    dx[i] = convert<T>(acc);
  }
}

constexpr int kParamTileC = 32;  // channels per block (threadIdx.x)
constexpr int kParamRowsY = 8;   // row groups per block (threadIdx.y)

// Rows of B*L each partial-sum block of the long-filter kernel covers about this many of;
// at most kMaxParts blocks along the rows. A function of the shape only, so the summation
// order is fixed.
int64_t dwconv1d_generic_parts(int64_t rows) {
  constexpr int64_t kRowsPerPart = 256, kMaxParts = 64;
  return std::clamp<int64_t>((rows + kRowsPerPart - 1) / kRowsPerPart, 1, kMaxParts);
}

// Block (channel tile, tap, part): sums, in double, over the part's rows (b, p) of
// gs[b, p, c] * x[b, p - (K-1-tap), c] (taps 0..K-1, where the input is not padding) or of
// gs[b, p, c] (tap == K: the bias); the row groups are added in a fixed order into
// ws[part][tap][c].
template <typename T, bool kSilu>
__global__ void dwconv1d_param_partials_generic_kernel(const T* g, const T* x, const T* w,
                                                       const T* bias, DwArgs a, int64_t rows,
                                                       int tap_begin, int64_t parts, double* ws) {
  __shared__ double partial[kParamRowsY][kParamTileC];
  const int c = blockIdx.x * kParamTileC + threadIdx.x;
  const int tap = tap_begin + blockIdx.y;
  const int64_t part = blockIdx.z;
  const int64_t start = part * rows / parts, end = (part + 1) * rows / parts;
  double acc = 0;
  if (c < a.channels) {
    const int shift = a.ksize - 1 - tap;  // -1 for the bias
    for (int64_t r = start + threadIdx.y; r < end; r += kParamRowsY) {
      const int64_t b = r / a.len, p = r % a.len;
      if (tap < a.ksize && p < shift) continue;
      const double gs = static_cast<double>(dw_pre_gradient<T, kSilu>(g, x, w, bias, a, b, p, c));
      acc += tap == a.ksize
                 ? gs
                 : gs * convert<double>(
                            x[b * a.x_batch_stride + c + dw_time(a, p - shift) * a.x_row_stride]);
    }
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < a.channels) {
    double s = 0;
    for (int k = 0; k < kParamRowsY; ++k) s += partial[k][threadIdx.x];
    ws[(part * (a.ksize + 1) + tap) * a.channels + c] = s;
  }
}

// ---- launches ----------------------------------------------------------------------------

DwArgs dw_args(const DwConv1dGeometry& geo) {
  DwArgs a;
  a.x_batch_stride = geo.x_batch_stride;
  a.x_row_stride = geo.x_row_stride;
  a.len = static_cast<int>(geo.len);
  a.channels = static_cast<int>(geo.channels);
  a.ksize = static_cast<int>(geo.ksize);
  a.chunks = static_cast<int>(std::max<int64_t>(1, (geo.len + kChunkSteps - 1) / kChunkSteps));
  a.items = geo.batch * a.chunks;
  a.reverse = geo.reverse;
  return a;
}

bool dw_fast(const DwConv1dGeometry& geo) {
  return geo.ksize <= kFastTaps;
}

// Blocks along the rows of the fast backward (its partial sums): every thread takes the
// same number of chunks (up to the last block), and at most about kMaxBwdParts blocks.
int64_t dw_backward_fast_parts(const DwArgs& a) {
  const int64_t per_thread = std::max<int64_t>(
      1, (a.items + kMaxBwdParts * kBwdChunksY - 1) / (kMaxBwdParts * kBwdChunksY));
  return std::clamp<int64_t>((a.items + per_thread * kBwdChunksY - 1) / (per_thread * kBwdChunksY),
                             1, 65535);
}

int64_t dw_backward_parts(const DwConv1dGeometry& geo) {
  return dw_fast(geo) ? dw_backward_fast_parts(dw_args(geo))
                      : dwconv1d_generic_parts(geo.batch * geo.len);
}

// Whether the fast kernels can move kV channels per access: the channel count and x's
// strides multiples of kV, every pointer aligned to the access.
template <typename T, int kV>
bool dw_vectorizable(const DwConv1dGeometry& geo, std::initializer_list<const void*> ptrs) {
  if (geo.channels % kV != 0 || geo.x_batch_stride % kV != 0 || geo.x_row_stride % kV != 0)
    return false;
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % (kV * sizeof(T)) != 0) return false;
  return true;
}

unsigned dw_tiles(int64_t channels, int kv) {
  return static_cast<unsigned>((channels / kv + kTileVecs - 1) / kTileVecs);
}

template <typename T, int kV, int kMaxK>
void launch_dw_forward(const T* x, const T* w, const T* bias, T* y, const DwArgs& a, bool silu) {
  const int64_t rows_y = (a.items + kFwdChunksY - 1) / kFwdChunksY;
  const dim3 grid(dw_tiles(a.channels, kV),
                  static_cast<unsigned>(std::min<int64_t>(rows_y, 65535)));
  const dim3 block(kTileVecs, kFwdChunksY);
  if (silu) {
    dwconv1d_forward_fast_kernel<T, kV, kMaxK, true>
        <<<grid, block, 0, stream()>>>(x, w, bias, y, a);
  } else {
    dwconv1d_forward_fast_kernel<T, kV, kMaxK, false>
        <<<grid, block, 0, stream()>>>(x, w, bias, y, a);
  }
}

template <typename T, int kV>
void launch_dw_forward(const T* x, const T* w, const T* bias, T* y, const DwArgs& a, bool silu) {
  if (a.ksize <= 4) {
    launch_dw_forward<T, kV, 4>(x, w, bias, y, a, silu);
  } else {
    launch_dw_forward<T, kV, kFastTaps>(x, w, bias, y, a, silu);
  }
}

template <typename T, int kV, int kMaxK>
void launch_dw_backward(const T* g, const T* x, const T* w, const T* bias, T* dx, double* ws,
                        const DwArgs& a, bool silu, bool want_dw, bool want_db) {
  const dim3 grid(dw_tiles(a.channels, kV), static_cast<unsigned>(dw_backward_fast_parts(a)));
  const dim3 block(kTileVecs, kBwdChunksY);
  if (silu) {
    dwconv1d_backward_fast_kernel<T, kV, kMaxK, true>
        <<<grid, block, 0, stream()>>>(g, x, w, bias, dx, ws, a, want_dw, want_db);
  } else {
    dwconv1d_backward_fast_kernel<T, kV, kMaxK, false>
        <<<grid, block, 0, stream()>>>(g, x, w, bias, dx, ws, a, want_dw, want_db);
  }
}

template <typename T, int kV>
void launch_dw_backward(const T* g, const T* x, const T* w, const T* bias, T* dx, double* ws,
                        const DwArgs& a, bool silu, bool want_dw, bool want_db) {
  if (a.ksize <= 4) {
    launch_dw_backward<T, kV, 4>(g, x, w, bias, dx, ws, a, silu, want_dw, want_db);
  } else {
    launch_dw_backward<T, kV, kFastTaps>(g, x, w, bias, dx, ws, a, silu, want_dw, want_db);
  }
}

// ---- conv2d -------------------------------------------------------------------------------

// Samples per GEMM: as many as keep the workspace under kMaxWorkspace elements.
int64_t conv2d_chunk(const Conv2dGeometry& g) {
  constexpr int64_t kMaxWorkspace = int64_t{1} << 25;
  const int64_t per_sample = g.col_cols() * (g.col_rows() + g.out_channels);
  const int64_t fit = per_sample > 0 ? kMaxWorkspace / per_sample : g.batch;
  return std::clamp<int64_t>(fit, 1, std::max<int64_t>(g.batch, 1));
}

// Elements of the column matrix and the GEMM output of one chunk (the workspace's front).
int64_t conv2d_gemm_elems(const Conv2dGeometry& g) {
  return conv2d_chunk(g) * g.col_cols() * (g.col_rows() + g.out_channels);
}

// Whether conv2d_backward sums dw over chunks of samples in float outside the GEMMs:
// bfloat16 with more than one chunk. (Each GEMM accumulates in float, but adding chunk after
// chunk into a bfloat16 dw with beta = 1 would round the running sum once per chunk.)
template <typename T>
bool dw_float_sum(const Conv2dGeometry& g) {
  return !std::is_same_v<T, compute_t<T>> && conv2d_chunk(g) < g.batch;
}

// n rounded up to whole 16-byte units of T (where the bfloat16 dw buffers start).
template <typename T>
int64_t align16(int64_t n) {
  constexpr int64_t kUnit = 16 / sizeof(T);
  return (n + kUnit - 1) / kUnit * kUnit;
}

// The chunk's dw goes to `part` (its GEMM's float sum rounded once); `sum` (+)= part in
// compute_t<T>, and the last chunk stores the total to dw, rounded once.
template <typename T>
__global__ void add_dw_part_kernel(const T* part, compute_t<T>* sum, T* dw, int64_t n, bool first,
                                   bool last) {
  IM_GRID_STRIDE_LOOP(i, n) {
    const compute_t<T> s = (first ? compute_t<T>(0) : sum[i]) + convert<compute_t<T>>(part[i]);
    if (last)
      dw[i] = convert<T>(s);
    else
      sum[i] = s;
  }
}

// Column matrix of samples b0 .. b0+nb-1 in the layout [Cin*kh*kw, nb, Ho*Wo], so one
// GEMM covers the chunk: col[row, bb, p] = x[b0+bb, c, oh*s+ki-pad, ow*s+kj-pad] or 0.
template <typename T>
__global__ void im2col_kernel(const T* x, T* col, int64_t in_channels, int64_t height,
                              int64_t width, int64_t kh, int64_t kw, int64_t stride,
                              int64_t padding, int64_t out_w, int64_t pixels, int64_t nb,
                              int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % pixels;
    const int64_t bb = (i / pixels) % nb;
    const int64_t row = i / (pixels * nb);
    const int64_t kj = row % kw, ki = (row / kw) % kh, c = row / (kw * kh);
    const int64_t ih = (p / out_w) * stride + ki - padding;
    const int64_t iw = (p % out_w) * stride + kj - padding;
    col[i] = (ih >= 0 && ih < height && iw >= 0 && iw < width)
                 ? x[((bb * in_channels + c) * height + ih) * width + iw]
                 : T{};
  }
}

// dx[bb, c, ih, iw] = the sum of col[(c, ki, kj), bb, (oh, ow)] over the windows that
// cover the pixel (the adjoint of im2col, gathered: every dx element is written once).
template <typename T>
__global__ void col2im_kernel(const T* col, T* dx, int64_t in_channels, int64_t height,
                              int64_t width, int64_t kh, int64_t kw, int64_t stride,
                              int64_t padding, int64_t out_h, int64_t out_w, int64_t nb,
                              int64_t n) {
  using C = compute_t<T>;
  const int64_t pixels = out_h * out_w;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t iw = i % width;
    const int64_t ih = (i / width) % height;
    const int64_t c = (i / (width * height)) % in_channels;
    const int64_t bb = i / (width * height * in_channels);
    C acc = C(0);
    for (int64_t ki = 0; ki < kh; ++ki) {
      const int64_t sh = ih + padding - ki;  // = oh * stride
      if (sh < 0) break;
      if (sh % stride != 0 || sh / stride >= out_h) continue;
      const int64_t oh = sh / stride;
      for (int64_t kj = 0; kj < kw; ++kj) {
        const int64_t sw = iw + padding - kj;
        if (sw < 0) break;
        if (sw % stride != 0 || sw / stride >= out_w) continue;
        const int64_t row = (c * kh + ki) * kw + kj;
        acc += convert<C>(col[(row * nb + bb) * pixels + oh * out_w + sw / stride]);
      }
    }
    dx[i] = convert<T>(acc);
  }
}

// y[bb, o, p] = ybuf[o, bb, p] + bias[o]: the chunk's GEMM result back in NCHW order.
template <typename T>
__global__ void unchunk_bias_kernel(const T* ybuf, const T* bias, T* y, int64_t out_channels,
                                    int64_t pixels, int64_t nb, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % pixels;
    const int64_t o = (i / pixels) % out_channels;
    const int64_t bb = i / (pixels * out_channels);
    const C v = convert<C>(ybuf[(o * nb + bb) * pixels + p]);
    y[i] = convert<T>(bias ? v + convert<C>(bias[o]) : v);
  }
}

// gbuf[o, bb, p] = grad[bb, o, p]: the chunk's gradient as one [Cout, nb*Ho*Wo] matrix.
template <typename T>
__global__ void chunk_grad_kernel(const T* grad, T* gbuf, int64_t out_channels, int64_t pixels,
                                  int64_t nb, int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t p = i % pixels;
    const int64_t o = (i / pixels) % out_channels;
    const int64_t bb = i / (pixels * out_channels);
    gbuf[(o * nb + bb) * pixels + p] = grad[i];
  }
}

// dbias[o] = sum over b and p of grad[b, o, p]: one block per channel, a fixed tree.
template <typename T>
__global__ void conv2d_dbias_kernel(const T* grad, T* dbias, int64_t batch, int64_t out_channels,
                                    int64_t pixels) {
  __shared__ double partial[kThreads];
  for (int64_t o = blockIdx.x; o < out_channels; o += gridDim.x) {
    double acc = 0;
    for (int64_t i = threadIdx.x; i < batch * pixels; i += blockDim.x) {
      const int64_t b = i / pixels, p = i % pixels;
      acc += convert<double>(grad[(b * out_channels + o) * pixels + p]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) dbias[o] = convert<T>(partial[0]);
    __syncthreads();  // partial[0] is read before the next channel overwrites it
  }
}

unsigned channel_blocks(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>(n, 1, 65535 * 32));
}

}  // namespace

// ---- causal depthwise conv1d ------------------------------------------------------------

template <typename T>
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y,
                             const DwConv1dGeometry& geo) {
  const int64_t n = geo.batch * geo.len * geo.channels;
  if (n == 0) return;
  const DwArgs a = dw_args(geo);
  if (dw_fast(geo)) {
    if (dw_vectorizable<T, kDwVec<T>>(geo, {x, y})) {
      launch_dw_forward<T, kDwVec<T>>(x, w, bias, y, a, geo.silu);
    } else {
      launch_dw_forward<T, 1>(x, w, bias, y, a, geo.silu);
    }
  } else if (geo.silu) {
    dwconv1d_forward_generic_kernel<T, true>
        <<<blocks_for(n), kThreads, 0, stream()>>>(x, w, bias, y, a, n);
  } else {
    dwconv1d_forward_generic_kernel<T, false>
        <<<blocks_for(n), kThreads, 0, stream()>>>(x, w, bias, y, a, n);
  }
  check_last_launch("causal_depthwise_conv1d kernel");
}

int64_t causal_depthwise_conv1d_backward_workspace(const DwConv1dGeometry& geo) {
  return dw_backward_parts(geo) * (geo.ksize + 1) * geo.channels;
}

template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, const T* bias, T* dx,
                                      T* dw, T* dbias, const DwConv1dGeometry& geo,
                                      double* workspace) {
  const int64_t rows = geo.batch * geo.len, n = rows * geo.channels;
  const bool want_params = dw != nullptr || dbias != nullptr;
  if (geo.channels == 0 || (dx == nullptr && !want_params)) return;
  if (rows == 0) {  // no terms: the CPU kernel's zeros
    if (dw)
      check_cuda(cudaMemsetAsync(dw, 0, sizeof(T) * geo.channels * geo.ksize, stream()),
                 "causal_depthwise_conv1d backward dw memset");
    if (dbias)
      check_cuda(cudaMemsetAsync(dbias, 0, sizeof(T) * geo.channels, stream()),
                 "causal_depthwise_conv1d backward dbias memset");
    return;
  }
  const DwArgs a = dw_args(geo);
  const int64_t parts = dw_backward_parts(geo);
  // Taps [tap_begin, tap_end) of the partial sums: 0..K-1 are dw's, K is dbias.
  const int tap_begin = dw ? 0 : a.ksize;
  const int tap_end = dbias ? a.ksize + 1 : a.ksize;
  if (dw_fast(geo)) {
    if (dw_vectorizable<T, kDwBwdVec<T>>(geo, {g, x, dx})) {
      launch_dw_backward<T, kDwBwdVec<T>>(g, x, w, bias, dx, workspace, a, geo.silu, dw != nullptr,
                                          dbias != nullptr);
    } else {
      launch_dw_backward<T, 1>(g, x, w, bias, dx, workspace, a, geo.silu, dw != nullptr,
                               dbias != nullptr);
    }
    check_last_launch("causal_depthwise_conv1d backward kernel");
  } else {
    if (dx) {
      if (geo.silu) {
        dwconv1d_backward_dx_generic_kernel<T, true>
            <<<blocks_for(n), kThreads, 0, stream()>>>(g, x, w, bias, dx, a, n);
      } else {
        dwconv1d_backward_dx_generic_kernel<T, false>
            <<<blocks_for(n), kThreads, 0, stream()>>>(g, x, w, bias, dx, a, n);
      }
      check_last_launch("causal_depthwise_conv1d backward (dx) kernel");
    }
    if (want_params) {
      const dim3 grid(static_cast<unsigned>((geo.channels + kParamTileC - 1) / kParamTileC),
                      static_cast<unsigned>(tap_end - tap_begin), static_cast<unsigned>(parts));
      if (grid.y > 65535)
        throw std::runtime_error("causal_depthwise_conv1d backward: kernel size " +
                                 std::to_string(geo.ksize) + " too large for the CUDA kernel");
      const dim3 block(kParamTileC, kParamRowsY);
      if (geo.silu) {
        dwconv1d_param_partials_generic_kernel<T, true>
            <<<grid, block, 0, stream()>>>(g, x, w, bias, a, rows, tap_begin, parts, workspace);
      } else {
        dwconv1d_param_partials_generic_kernel<T, false>
            <<<grid, block, 0, stream()>>>(g, x, w, bias, a, rows, tap_begin, parts, workspace);
      }
      check_last_launch("causal_depthwise_conv1d backward (dw, dbias partials) kernel");
    }
  }
  if (!want_params) return;
  const dim3 grid(static_cast<unsigned>((geo.channels + kTileVecs - 1) / kTileVecs),
                  static_cast<unsigned>(tap_end - tap_begin));
  dwconv1d_param_finish_kernel<T><<<grid, dim3(kTileVecs, kFinishY), 0, stream()>>>(
      workspace, dw, dbias, a.channels, a.ksize, tap_begin, parts);
  check_last_launch("causal_depthwise_conv1d backward (dw, dbias) kernel");
}

// ---- conv2d -------------------------------------------------------------------------------

template <typename T>
int64_t conv2d_workspace(const Conv2dGeometry& g) {
  const int64_t gemm_elems = conv2d_gemm_elems(g);
  if (!dw_float_sum<T>(g)) return gemm_elems;
  // Then a chunk's dw part (T) and the running sum (compute_t<T>), each 16-byte aligned.
  const int64_t dw = g.out_channels * g.col_rows();
  return align16<T>(gemm_elems) + align16<T>(dw) + dw * sizeof(compute_t<T>) / sizeof(T);
}

template <typename T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dGeometry& g, T* workspace) {
  const int64_t rows = g.col_rows(), pixels = g.col_cols();
  const int64_t x_sample = g.in_channels * g.height * g.width;
  const int64_t y_sample = g.out_channels * pixels;
  if (g.batch == 0 || y_sample == 0) return;
  const int64_t chunk = conv2d_chunk(g);
  T* col = workspace;                           // [rows, nb, pixels]
  T* ybuf = workspace + chunk * rows * pixels;  // [Cout, nb, pixels]
  for (int64_t b0 = 0; b0 < g.batch; b0 += chunk) {
    const int64_t nb = std::min(chunk, g.batch - b0);
    const int64_t n_col = rows * nb * pixels;
    im2col_kernel<T><<<blocks_for(n_col), kThreads, 0, stream()>>>(
        x + b0 * x_sample, col, g.in_channels, g.height, g.width, g.kernel_h, g.kernel_w, g.stride,
        g.padding, g.out_w, pixels, nb, n_col);
    check_last_launch("conv2d im2col kernel");
    // ybuf [Cout, nb*pixels] = W [Cout, rows] @ col [rows, nb*pixels]
    gemm<T>(false, false, g.out_channels, nb * pixels, rows, convert<T>(1.0f), w, rows, col,
            nb * pixels, convert<T>(0.0f), ybuf, nb * pixels);
    const int64_t n_y = nb * y_sample;
    unchunk_bias_kernel<T><<<blocks_for(n_y), kThreads, 0, stream()>>>(
        ybuf, bias, y + b0 * y_sample, g.out_channels, pixels, nb, n_y);
    check_last_launch("conv2d bias kernel");
  }
}

template <typename T>
void conv2d_backward(const T* grad, const T* x, const T* w, T* dx, T* dw, T* dbias,
                     const Conv2dGeometry& g, T* workspace) {
  const int64_t rows = g.col_rows(), pixels = g.col_cols();
  const int64_t x_sample = g.in_channels * g.height * g.width;
  const int64_t y_sample = g.out_channels * pixels;
  if (dbias && g.out_channels > 0) {
    conv2d_dbias_kernel<T><<<channel_blocks(g.out_channels), kThreads, 0, stream()>>>(
        grad, dbias, g.batch, g.out_channels, pixels);
    check_last_launch("conv2d backward (dbias) kernel");
  }
  if (dw && (g.batch == 0 || pixels == 0)) {  // no terms: the CPU kernel's zeros
    check_cuda(cudaMemsetAsync(dw, 0, sizeof(T) * g.out_channels * rows, stream()),
               "conv2d backward dw memset");
  }
  if ((!dw && !dx) || g.batch == 0 || pixels == 0) return;
  const int64_t chunk = conv2d_chunk(g);
  T* col = workspace;                           // [rows, nb, pixels]
  T* gbuf = workspace + chunk * rows * pixels;  // [Cout, nb, pixels]
  const T one = convert<T>(1.0f), zero = convert<T>(0.0f);
  // bfloat16 over several chunks: each chunk's dw GEMM writes dw_part, summed in dw_sum.
  const bool float_sum = dw != nullptr && dw_float_sum<T>(g);
  T* dw_part = float_sum ? workspace + align16<T>(conv2d_gemm_elems(g)) : dw;
  compute_t<T>* dw_sum =
      float_sum ? reinterpret_cast<compute_t<T>*>(dw_part + align16<T>(g.out_channels * rows))
                : nullptr;
  for (int64_t b0 = 0; b0 < g.batch; b0 += chunk) {
    const int64_t nb = std::min(chunk, g.batch - b0);
    const int64_t cols = nb * pixels;
    const int64_t n_g = nb * y_sample;
    chunk_grad_kernel<T><<<blocks_for(n_g), kThreads, 0, stream()>>>(
        grad + b0 * y_sample, gbuf, g.out_channels, pixels, nb, n_g);
    check_last_launch("conv2d backward gradient reorder kernel");
    if (dw) {
      const int64_t n_col = rows * cols;
      im2col_kernel<T><<<blocks_for(n_col), kThreads, 0, stream()>>>(
          x + b0 * x_sample, col, g.in_channels, g.height, g.width, g.kernel_h, g.kernel_w,
          g.stride, g.padding, g.out_w, pixels, nb, n_col);
      check_last_launch("conv2d backward im2col kernel");
      // dW [Cout, rows] (+)= gbuf [Cout, cols] @ col^T
      gemm<T>(false, true, g.out_channels, rows, cols, one, gbuf, cols, col, cols,
              b0 == 0 || float_sum ? zero : one, dw_part, rows);
      if (float_sum) {
        const int64_t n_dw = g.out_channels * rows;
        add_dw_part_kernel<T><<<blocks_for(n_dw), kThreads, 0, stream()>>>(
            dw_part, dw_sum, dw, n_dw, b0 == 0, b0 + nb == g.batch);
        check_last_launch("conv2d backward (dw sum over chunks) kernel");
      }
    }
    if (dx) {
      // dcol [rows, cols] = W^T @ gbuf, then gathered back onto the images.
      gemm<T>(true, false, rows, cols, g.out_channels, one, w, rows, gbuf, cols, zero, col, cols);
      const int64_t n_x = nb * x_sample;
      col2im_kernel<T><<<blocks_for(n_x), kThreads, 0, stream()>>>(
          col, dx + b0 * x_sample, g.in_channels, g.height, g.width, g.kernel_h, g.kernel_w,
          g.stride, g.padding, g.out_h, g.out_w, nb, n_x);
      check_last_launch("conv2d backward col2im kernel");
    }
  }
}

#define IM_CUDA_INSTANTIATE_CONV(T)                                                             \
  template int64_t conv2d_workspace<T>(const Conv2dGeometry&);                                  \
  template void causal_depthwise_conv1d<T>(const T*, const T*, const T*, T*,                    \
                                           const DwConv1dGeometry&);                            \
  template void causal_depthwise_conv1d_backward<T>(const T*, const T*, const T*, const T*, T*, \
                                                    T*, T*, const DwConv1dGeometry&, double*);  \
  template void conv2d<T>(const T*, const T*, const T*, T*, const Conv2dGeometry&, T*);         \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*,                    \
                                   const Conv2dGeometry&, T*);

IM_CUDA_INSTANTIATE_CONV(float)
IM_CUDA_INSTANTIATE_CONV(double)
IM_CUDA_INSTANTIATE_CONV(bfloat16)
#undef IM_CUDA_INSTANTIATE_CONV

}  // namespace im::kernels::cuda
