// CUDA convolutions; same layouts and results as kernels/cpu/conv.h (device pointers,
// every launch on the current stream). Scratch memory comes from the caller (the op
// front-end allocates it as a tensor, so it goes through the caching allocator): each
// function that needs some has a *_workspace companion giving its size.
//
// T is float, double or bfloat16; bfloat16 is storage only: kernels compute in float (in
// double where float32 does too: the weight and bias gradient sums), the GEMMs accumulate in
// float, and every result is rounded to bfloat16 once, on store.
#pragma once

#include <cstdint>

#include "kernels/cpu/conv.h"  // Conv2dGeometry (a plain struct; nothing of the CPU code is linked)

namespace im::kernels::cuda {

using Conv2dGeometry = cpu::Conv2dGeometry;

// y[b,t,c] = bias[c] + sum_j w[c,j] x[b, t-K+1+j, c], x = 0 before t = 0; bias may be
// null. One thread per output element; consecutive threads take consecutive channels.
template <typename T>
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y, int64_t batch,
                             int64_t len, int64_t channels, int64_t ksize);

// Doubles of workspace causal_depthwise_conv1d_backward needs (the per-block partial
// sums of dw and dbias).
int64_t causal_depthwise_conv1d_backward_workspace(int64_t batch, int64_t len, int64_t channels,
                                                   int64_t ksize);

// Gradients for g [B, L, C]; dx, dw, dbias may be null (not wanted), the others are
// overwritten. dx is gathered per element (no atomics); dw and dbias sum over B*L in
// double, in fixed partitions reduced in a fixed order, so results are deterministic.
template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, T* dx, T* dw, T* dbias,
                                      int64_t batch, int64_t len, int64_t channels, int64_t ksize,
                                      double* workspace);

// Elements of T of workspace conv2d and conv2d_backward need: a chunk of samples'
// column matrix plus an output-sized buffer; for bfloat16 over several chunks also dw's
// running sum in float (a chunk's dw is added to it, rounded to bfloat16 once at the end).
template <typename T>
int64_t conv2d_workspace(const Conv2dGeometry& g);

// x [B, Cin, H, W], w [Cout, Cin, kh, kw], bias [Cout] or null -> y [B, Cout, Ho, Wo].
// im2col + one GEMM per chunk of samples (kernels/cuda/gemm.h).
template <typename T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dGeometry& g, T* workspace);

// Gradients for grad [B, Cout, Ho, Wo]; dx, dw, dbias may be null, the others are
// overwritten.
template <typename T>
void conv2d_backward(const T* grad, const T* x, const T* w, T* dx, T* dw, T* dbias,
                     const Conv2dGeometry& g, T* workspace);

}  // namespace im::kernels::cuda
