// CPU reference convolutions on contiguous buffers.
//
// causal_depthwise_conv1d works on the token-major [B, L, C] layout the mixer produces,
// so every inner loop runs over the channel dim. conv2d lowers each sample to a column
// matrix (im2col) and runs one GEMM per sample through BLAS.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

// A depthwise conv1d's shape and x's layout. x is [B, L, C] with its channel dim
// contiguous and rows x_batch_stride / x_row_stride elements apart (a view such as half of
// a [B, L, 2C] tensor is read in place); y, the upstream gradient and dx are contiguous.
struct DwConv1dGeometry {
  int64_t batch = 0, len = 0, channels = 0, ksize = 0;
  int64_t x_batch_stride = 0, x_row_stride = 0;
  // Anti-causal: y_t = sum_j w_j x_{t+K-1-j} + b, zero past the end; exactly the causal
  // conv of x flipped in time, flipped back (the kernels walk time backwards).
  bool reverse = false;
  bool silu = false;  // y = SiLU(conv + b)

  // A contiguous x [batch, len, channels], causal, no activation.
  static DwConv1dGeometry contiguous(int64_t batch, int64_t len, int64_t channels, int64_t ksize) {
    return {batch, len, channels, ksize, len * channels, channels, false, false};
  }
  // The time index of the p-th step in the kernels' causal walk.
  int64_t time_of(int64_t p) const { return reverse ? len - 1 - p : p; }
};

// y[b,t,c] = act(bias[c] + sum_j w[c,j] x[b, t-K+1+j, c]), x = 0 before t = 0 (after the
// end with reverse, mirrored). bias may be null.
template <typename T>
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y,
                             const DwConv1dGeometry& geo);

// Gradients of the above for the upstream gradient g [B, L, C]. Any of dx, dw, dbias may
// be null (not wanted); the others are overwritten. With silu the pre-activation is
// recomputed from x, w and bias (bias may be null).
template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, const T* bias, T* dx,
                                      T* dw, T* dbias, const DwConv1dGeometry& geo);

struct Conv2dGeometry {
  int64_t batch = 0, in_channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, kernel_h = 0, kernel_w = 0, stride = 1, padding = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t col_rows() const { return in_channels * kernel_h * kernel_w; }
  int64_t col_cols() const { return out_h * out_w; }
};

// One sample x [Cin, H, W] -> col [Cin*kh*kw, Ho*Wo] (zero where the window leaves the
// padded image).
template <typename T>
void im2col(const T* x, const Conv2dGeometry& g, T* col);

// The adjoint of im2col: adds col [Cin*kh*kw, Ho*Wo] back into dx [Cin, H, W].
template <typename T>
void col2im_add(const T* col, const Conv2dGeometry& g, T* dx);

// x [B, Cin, H, W], w [Cout, Cin, kh, kw], bias [Cout] or null -> y [B, Cout, Ho, Wo].
template <typename T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dGeometry& g);

// Gradients for g [B, Cout, Ho, Wo]; dx, dw, dbias may be null, the others are overwritten.
template <typename T>
void conv2d_backward(const T* grad, const T* x, const T* w, T* dx, T* dw, T* dbias,
                     const Conv2dGeometry& g);

}  // namespace im::kernels::cpu
