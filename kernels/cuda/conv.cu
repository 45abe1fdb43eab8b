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
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cuda/conv.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.cuh"

namespace im::kernels::cuda {

namespace {

// ---- causal depthwise conv1d ------------------------------------------------------------

template <typename T>
__global__ void dwconv1d_forward_kernel(const T* x, const T* w, const T* bias, T* y, int64_t len,
                                        int64_t channels, int64_t ksize, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = i % channels;
    const int64_t t = (i / channels) % len;
    C acc = bias ? convert<C>(bias[c]) : C(0);
    // Taps that would read before t = 0 see the zero padding and are skipped.
    for (int64_t j = ksize - 1 - t > 0 ? ksize - 1 - t : 0; j < ksize; ++j)
      acc += convert<C>(w[c * ksize + j]) * convert<C>(x[i + (j - ksize + 1) * channels]);
    y[i] = convert<T>(acc);
  }
}

// dx[b,s,c] = sum_j w[c,j] g[b, s+K-1-j, c] over the taps whose output lies before L
// (j descending: the CPU kernel's order of the outputs t = s+K-1-j).
template <typename T>
__global__ void dwconv1d_backward_dx_kernel(const T* g, const T* w, T* dx, int64_t len,
                                            int64_t channels, int64_t ksize, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t c = i % channels;
    const int64_t s = (i / channels) % len;
    const int64_t j_lo = s + ksize - len > 0 ? s + ksize - len : 0;
    C acc = C(0);
    for (int64_t j = ksize - 1; j >= j_lo; --j)
      acc += convert<C>(w[c * ksize + j]) * convert<C>(g[i + (ksize - 1 - j) * channels]);
    dx[i] = convert<T>(acc);
  }
}

constexpr int kParamTileC = 32;  // channels per block (threadIdx.x)
constexpr int kParamRowsY = 8;   // row groups per block (threadIdx.y)

// Rows of B*L each partial-sum block covers about this many of; at most kMaxParts blocks
// along the rows. A function of the shape only, so the summation order is fixed.
int64_t dwconv1d_parts(int64_t rows) {
  constexpr int64_t kRowsPerPart = 256, kMaxParts = 64;
  return std::clamp<int64_t>((rows + kRowsPerPart - 1) / kRowsPerPart, 1, kMaxParts);
}

// Block (channel tile, tap, part): sums, in double, over the part's rows r = (b, t) of
// g[r, c] * x[r - (K-1-tap), c] (taps 0..K-1, where the input is not padding) or of
// g[r, c] (tap == K: the bias). Row groups are then added in a fixed order and the sum
// goes to ws[part][tap][c].
template <typename T>
__global__ void dwconv1d_param_partials_kernel(const T* g, const T* x, int64_t rows, int64_t len,
                                               int64_t channels, int64_t ksize, int64_t tap_begin,
                                               int64_t parts, double* ws) {
  __shared__ double partial[kParamRowsY][kParamTileC];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kParamTileC + threadIdx.x;
  const int64_t tap = tap_begin + blockIdx.y;
  const int64_t part = blockIdx.z;
  const int64_t start = part * rows / parts, end = (part + 1) * rows / parts;
  double acc = 0;
  if (c < channels) {
    if (tap == ksize) {
      for (int64_t r = start + threadIdx.y; r < end; r += kParamRowsY)
        acc += convert<double>(g[r * channels + c]);
    } else {
      const int64_t shift = ksize - 1 - tap;
      for (int64_t r = start + threadIdx.y; r < end; r += kParamRowsY)
        if (r % len >= shift)
          acc +=
              convert<double>(g[r * channels + c]) * convert<double>(x[(r - shift) * channels + c]);
    }
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    double s = 0;
    for (int k = 0; k < kParamRowsY; ++k) s += partial[k][threadIdx.x];
    ws[(part * (ksize + 1) + tap) * channels + c] = s;
  }
}

// The same sums in one pass for short filters (K ≤ kWindowTaps): each thread walks a
// contiguous run of its part's rows for one channel, keeping the last K inputs of the
// sequence in registers, so g and x are read once instead of once per tap (the per-tap
// kernel above read them K + 1 times: 3.3 ms of an H100 training step at the small preset).
constexpr int kWindowTaps = 8;

template <typename T>
__global__ void dwconv1d_param_window_kernel(const T* g, const T* x, int64_t rows, int64_t len,
                                             int64_t channels, int ksize, bool with_dw,
                                             bool with_bias, int64_t parts, double* ws) {
  __shared__ double partial[kParamRowsY][kParamTileC];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kParamTileC + threadIdx.x;
  const int64_t part = blockIdx.y;
  const int64_t start = part * rows / parts, end = (part + 1) * rows / parts;
  // This thread's run of rows inside the part.
  const int64_t r0 = start + (end - start) * threadIdx.y / kParamRowsY;
  const int64_t r1 = start + (end - start) * (threadIdx.y + 1) / kParamRowsY;
  double acc[kWindowTaps] = {}, acc_bias = 0;  // acc[s]: tap K-1-s (register-indexed)
  if (c < channels && r0 < r1) {
    int64_t t = r0 % len;  // the row's position in its sequence
    // window[s] = x[r - s], the input that tap K-1-s sees; 0 before the sequence starts.
    double window[kWindowTaps] = {};
#pragma unroll
    for (int s = 1; s < kWindowTaps; ++s)
      if (s < ksize && t >= s) window[s] = convert<double>(x[(r0 - s) * channels + c]);
    for (int64_t r = r0; r < r1; ++r) {
      const double gr = convert<double>(g[r * channels + c]);
      window[0] = convert<double>(x[r * channels + c]);
#pragma unroll
      for (int s = 0; s < kWindowTaps; ++s)
        if (s < ksize) acc[s] += gr * window[s];
      acc_bias += gr;
      // Slide: the next row sees this one at s = 1; a new sequence sees only padding.
      if (++t == len) {
        t = 0;
#pragma unroll
        for (int s = kWindowTaps - 1; s > 0; --s) window[s] = 0;
      } else {
#pragma unroll
        for (int s = kWindowTaps - 1; s > 0; --s) window[s] = window[s - 1];
      }
    }
  }
  // Per tap: the row groups' sums added in a fixed order, to ws[part][tap][c].
  for (int tap = 0; tap <= ksize; ++tap) {
    if ((tap < ksize && !with_dw) || (tap == ksize && !with_bias)) continue;
    double mine = acc_bias;
#pragma unroll
    for (int s = 0; s < kWindowTaps; ++s)
      if (tap < ksize && s == ksize - 1 - tap) mine = acc[s];
    partial[threadIdx.y][threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
      double sum = 0;
      for (int k = 0; k < kParamRowsY; ++k) sum += partial[k][threadIdx.x];
      ws[(part * (ksize + 1) + tap) * channels + c] = sum;
    }
    __syncthreads();
  }
}

// Long filters: one block per (channel tile, tap, part).
template <typename T>
void launch_dwconv1d_param_partials(const T* g, const T* x, int64_t rows, int64_t len,
                                    int64_t channels, int64_t ksize, int64_t tap_begin,
                                    int64_t tap_end, int64_t parts, double* workspace) {
  const dim3 grid(static_cast<unsigned>((channels + kParamTileC - 1) / kParamTileC),
                  static_cast<unsigned>(tap_end - tap_begin), static_cast<unsigned>(parts));
  if (grid.y > 65535)
    throw std::runtime_error("causal_depthwise_conv1d backward: kernel size " +
                             std::to_string(ksize) + " too large for the CUDA kernel");
  dwconv1d_param_partials_kernel<T><<<grid, dim3(kParamTileC, kParamRowsY), 0, stream()>>>(
      g, x, rows, len, channels, ksize, tap_begin, parts, workspace);
  check_last_launch("causal_depthwise_conv1d backward (dw, dbias partials) kernel");
}

template <typename T>
__global__ void dwconv1d_param_finish_kernel(const double* ws, T* dw, T* dbias, int64_t channels,
                                             int64_t ksize, int64_t tap_begin, int64_t taps,
                                             int64_t parts) {
  IM_GRID_STRIDE_LOOP(i, taps * channels) {
    const int64_t tap = tap_begin + i / channels, c = i % channels;
    double s = 0;
    for (int64_t p = 0; p < parts; ++p) s += ws[(p * (ksize + 1) + tap) * channels + c];
    if (tap < ksize) {
      dw[c * ksize + tap] = convert<T>(s);
    } else {
      dbias[c] = convert<T>(s);
    }
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
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y, int64_t batch,
                             int64_t len, int64_t channels, int64_t ksize) {
  const int64_t n = batch * len * channels;
  if (n == 0) return;
  dwconv1d_forward_kernel<T>
      <<<blocks_for(n), kThreads, 0, stream()>>>(x, w, bias, y, len, channels, ksize, n);
  check_last_launch("causal_depthwise_conv1d kernel");
}

int64_t causal_depthwise_conv1d_backward_workspace(int64_t batch, int64_t len, int64_t channels,
                                                   int64_t ksize) {
  return dwconv1d_parts(batch * len) * (ksize + 1) * channels;
}

template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, T* dx, T* dw, T* dbias,
                                      int64_t batch, int64_t len, int64_t channels, int64_t ksize,
                                      double* workspace) {
  const int64_t rows = batch * len, n = rows * channels;
  if (dx && n > 0) {
    dwconv1d_backward_dx_kernel<T>
        <<<blocks_for(n), kThreads, 0, stream()>>>(g, w, dx, len, channels, ksize, n);
    check_last_launch("causal_depthwise_conv1d backward (dx) kernel");
  }
  if ((!dw && !dbias) || channels == 0) return;
  // Taps [tap_begin, tap_end): 0..K-1 are dw's, K is dbias.
  const int64_t tap_begin = dw ? 0 : ksize;
  const int64_t tap_end = dbias ? ksize + 1 : ksize;
  const int64_t parts = dwconv1d_parts(rows);
  if (ksize <= kWindowTaps) {
    const dim3 grid(static_cast<unsigned>((channels + kParamTileC - 1) / kParamTileC),
                    static_cast<unsigned>(parts));
    dwconv1d_param_window_kernel<T><<<grid, dim3(kParamTileC, kParamRowsY), 0, stream()>>>(
        g, x, rows, len, channels, static_cast<int>(ksize), dw != nullptr, dbias != nullptr, parts,
        workspace);
    check_last_launch("causal_depthwise_conv1d backward (dw, dbias partials) kernel");
  } else {
    launch_dwconv1d_param_partials(g, x, rows, len, channels, ksize, tap_begin, tap_end, parts,
                                   workspace);
  }
  const int64_t m = (tap_end - tap_begin) * channels;
  dwconv1d_param_finish_kernel<T><<<blocks_for(m), kThreads, 0, stream()>>>(
      workspace, dw, dbias, channels, ksize, tap_begin, tap_end - tap_begin, parts);
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

#define IM_CUDA_INSTANTIATE_CONV(T)                                                               \
  template int64_t conv2d_workspace<T>(const Conv2dGeometry&);                                    \
  template void causal_depthwise_conv1d<T>(const T*, const T*, const T*, T*, int64_t, int64_t,    \
                                           int64_t, int64_t);                                     \
  template void causal_depthwise_conv1d_backward<T>(const T*, const T*, const T*, T*, T*, T*,     \
                                                    int64_t, int64_t, int64_t, int64_t, double*); \
  template void conv2d<T>(const T*, const T*, const T*, T*, const Conv2dGeometry&, T*);           \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*,                      \
                                   const Conv2dGeometry&, T*);

IM_CUDA_INSTANTIATE_CONV(float)
IM_CUDA_INSTANTIATE_CONV(double)
IM_CUDA_INSTANTIATE_CONV(bfloat16)
#undef IM_CUDA_INSTANTIATE_CONV

}  // namespace im::kernels::cuda
