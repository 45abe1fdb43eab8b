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
using DwConv1dGeometry = cpu::DwConv1dGeometry;

// y[b,t,c] = act(bias[c] + sum_j w[c,j] x[b, t-K+1+j, c]) (geo: causal or reverse, SiLU or
// none, x's row strides); bias may be null. For K <= 8 each thread walks a chunk of one
// sequence for 8 (bfloat16), 4 (float) or 2 (double) channels, 16-byte accesses where
// the channel count, x's strides and the pointers allow, with the K-1 previous inputs in
// registers; longer filters take one thread per output element.
template <typename T>
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y,
                             const DwConv1dGeometry& geo);

// Doubles of workspace causal_depthwise_conv1d_backward needs (the per-block partial
// sums of dw and dbias); a function of the shape only.
int64_t causal_depthwise_conv1d_backward_workspace(const DwConv1dGeometry& geo);

// Gradients for g [B, L, C] (contiguous); dx, dw, dbias may be null (not wanted), the
// others are overwritten; bias (null: none) is read with silu, whose pre-activation is
// recomputed from x. For K <= 8 one pass reads g and x once, writes dx and each block's
// partial sums of dw and dbias (summed over its rows in compute_t<T>, over the block in
// double), and a second small kernel adds the blocks' sums in double in a fixed order:
// deterministic.
template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, const T* bias, T* dx,
                                      T* dw, T* dbias, const DwConv1dGeometry& geo,
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
