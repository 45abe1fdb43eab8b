#include "kernels/cpu/conv.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "kernels/elementwise_ops.h"

namespace im::kernels::cpu {

namespace {

// Tap-major copy [K, C] of weights stored [C, K], so the channel loop reads them with
// unit stride.
template <typename T>
std::vector<T> taps_by_channel(const T* w, int64_t channels, int64_t ksize) {
  std::vector<T> wt(static_cast<size_t>(ksize * channels));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t j = 0; j < ksize; ++j) wt[j * channels + c] = w[c * ksize + j];
  return wt;
}

template <typename T>
const T* x_row(const T* x, const DwConv1dGeometry& geo, int64_t b, int64_t t) {
  return x + b * geo.x_batch_stride + t * geo.x_row_stride;
}

// The pre-activation conv + bias at step p of sequence b (time geo.time_of(p)) into out[C].
// One routine for the forward and the backward's recomputation, so both see the same
// numbers, and the walk in causal order makes reverse exactly flip(conv(flip(x))).
template <typename T>
void conv_row(const T* x, const std::vector<T>& wt, const T* bias, const DwConv1dGeometry& geo,
              int64_t b, int64_t p, T* out) {
  const int64_t channels = geo.channels, ksize = geo.ksize;
  for (int64_t c = 0; c < channels; ++c) out[c] = bias ? bias[c] : T(0);
  // Taps that would read before step 0 see the zero padding and are skipped.
  for (int64_t j = std::max<int64_t>(0, ksize - 1 - p); j < ksize; ++j) {
    const T* xr = x_row(x, geo, b, geo.time_of(p - ksize + 1 + j));
    const T* wr = wt.data() + j * channels;
    for (int64_t c = 0; c < channels; ++c) out[c] += wr[c] * xr[c];
  }
}

}  // namespace

template <typename T>
void causal_depthwise_conv1d(const T* x, const T* w, const T* bias, T* y,
                             const DwConv1dGeometry& geo) {
  const int64_t len = geo.len, channels = geo.channels;
  const std::vector<T> wt = taps_by_channel(w, channels, geo.ksize);
  for (int64_t b = 0; b < geo.batch; ++b) {
    for (int64_t p = 0; p < len; ++p) {
      T* yr = y + (b * len + geo.time_of(p)) * channels;
      conv_row(x, wt, bias, geo, b, p, yr);
      if (geo.silu)
        for (int64_t c = 0; c < channels; ++c)
          yr[c] = kernels::unary_forward<T>(UnaryOp::Silu, {}, yr[c]);
    }
  }
}

template <typename T>
void causal_depthwise_conv1d_backward(const T* g, const T* x, const T* w, const T* bias, T* dx,
                                      T* dw, T* dbias, const DwConv1dGeometry& geo) {
  const int64_t batch = geo.batch, len = geo.len, channels = geo.channels, ksize = geo.ksize;
  const std::vector<T> wt = taps_by_channel(w, channels, ksize);
  // With silu, the gradient at the pre-activation s (recomputed): g * SiLU'(s).
  std::vector<T> gs_buf;
  const T* gs = g;
  if (geo.silu) {
    gs_buf.resize(static_cast<size_t>(batch * len * channels));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t p = 0; p < len; ++p) {
        const int64_t row = (b * len + geo.time_of(p)) * channels;
        T* sr = gs_buf.data() + row;
        conv_row(x, wt, bias, geo, b, p, sr);
        for (int64_t c = 0; c < channels; ++c)
          sr[c] = kernels::unary_backward<T>(UnaryOp::Silu, {}, g[row + c], sr[c], T(0));
      }
    }
    gs = gs_buf.data();
  }
  // Weight and bias gradients sum over B*L positions: accumulate in double so float32
  // results do not depend on the sequence length's rounding.
  std::vector<double> acc_w(dw ? static_cast<size_t>(ksize * channels) : 0, 0.0);
  std::vector<double> acc_b(dbias ? static_cast<size_t>(channels) : 0, 0.0);
  if (dx) std::fill(dx, dx + batch * len * channels, T(0));
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t p = 0; p < len; ++p) {
      const T* gr = gs + (b * len + geo.time_of(p)) * channels;
      if (dbias)
        for (int64_t c = 0; c < channels; ++c) acc_b[c] += gr[c];
      for (int64_t j = std::max<int64_t>(0, ksize - 1 - p); j < ksize; ++j) {
        const int64_t ts = geo.time_of(p - ksize + 1 + j);
        if (dw) {
          double* aw = acc_w.data() + j * channels;
          const T* xr = x_row(x, geo, b, ts);
          for (int64_t c = 0; c < channels; ++c) aw[c] += static_cast<double>(gr[c]) * xr[c];
        }
        if (dx) {
          T* dxr = dx + (b * len + ts) * channels;
          const T* wr = wt.data() + j * channels;
          for (int64_t c = 0; c < channels; ++c) dxr[c] += wr[c] * gr[c];
        }
      }
    }
  }
  if (dw)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t j = 0; j < ksize; ++j)
        dw[c * ksize + j] = static_cast<T>(acc_w[j * channels + c]);
  if (dbias)
    for (int64_t c = 0; c < channels; ++c) dbias[c] = static_cast<T>(acc_b[c]);
}

namespace {

// Output positions o in [lo, hi) whose input position o*stride + offset lies in [0, size).
struct Range {
  int64_t lo, hi;
};
Range valid_outputs(int64_t offset, int64_t size, int64_t stride, int64_t n_out) {
  // o*stride + offset >= 0  <=>  o >= ceil(-offset / stride)
  int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  // o*stride + offset <= size - 1  <=>  o <= floor((size - 1 - offset) / stride)
  const int64_t top = size - 1 - offset;
  int64_t hi = top < 0 ? 0 : top / stride + 1;
  lo = std::min(lo, n_out);
  hi = std::clamp(hi, lo, n_out);
  return {lo, hi};
}

}  // namespace

template <typename T>
void im2col(const T* x, const Conv2dGeometry& g, T* col) {
  const int64_t ho = g.out_h, wo = g.out_w, s = g.stride;
  for (int64_t c = 0; c < g.in_channels; ++c) {
    const T* xc = x + c * g.height * g.width;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const Range rows = valid_outputs(ki - g.padding, g.height, s, ho);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const Range cols = valid_outputs(kj - g.padding, g.width, s, wo);
        T* dst = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * ho * wo;
        for (int64_t oh = 0; oh < ho; ++oh) {
          T* d = dst + oh * wo;
          if (oh < rows.lo || oh >= rows.hi) {
            std::fill(d, d + wo, T(0));
            continue;
          }
          // Index arithmetic, not pointers: the window origin may sit left of the row.
          const int64_t base = (oh * s + ki - g.padding) * g.width + kj - g.padding;
          std::fill(d, d + cols.lo, T(0));
          for (int64_t ow = cols.lo; ow < cols.hi; ++ow) d[ow] = xc[base + ow * s];
          std::fill(d + cols.hi, d + wo, T(0));
        }
      }
    }
  }
}

template <typename T>
void col2im_add(const T* col, const Conv2dGeometry& g, T* dx) {
  const int64_t ho = g.out_h, wo = g.out_w, s = g.stride;
  for (int64_t c = 0; c < g.in_channels; ++c) {
    T* dxc = dx + c * g.height * g.width;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const Range rows = valid_outputs(ki - g.padding, g.height, s, ho);
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const Range cols = valid_outputs(kj - g.padding, g.width, s, wo);
        const T* src = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * ho * wo;
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          const T* sr = src + oh * wo;
          const int64_t base = (oh * s + ki - g.padding) * g.width + kj - g.padding;
          for (int64_t ow = cols.lo; ow < cols.hi; ++ow) dxc[base + ow * s] += sr[ow];
        }
      }
    }
  }
}

template <typename T>
void conv2d(const T* x, const T* w, const T* bias, T* y, const Conv2dGeometry& g) {
  const int64_t rows = g.col_rows(), pixels = g.col_cols();
  const int64_t x_sample = g.in_channels * g.height * g.width;
  const int64_t y_sample = g.out_channels * pixels;
  std::vector<T> col(static_cast<size_t>(rows * pixels));
  for (int64_t b = 0; b < g.batch; ++b) {
    T* yb = y + b * y_sample;
    im2col(x + b * x_sample, g, col.data());
    // y_b [Cout, Ho*Wo] = W [Cout, Cin*kh*kw] @ col
    gemm<T>(false, false, g.out_channels, pixels, rows, T(1), w, rows, col.data(), pixels, T(0), yb,
            pixels);
    if (bias)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        T* yr = yb + o * pixels;
        for (int64_t p = 0; p < pixels; ++p) yr[p] += bias[o];
      }
  }
}

template <typename T>
void conv2d_backward(const T* grad, const T* x, const T* w, T* dx, T* dw, T* dbias,
                     const Conv2dGeometry& g) {
  const int64_t rows = g.col_rows(), pixels = g.col_cols();
  const int64_t x_sample = g.in_channels * g.height * g.width;
  const int64_t y_sample = g.out_channels * pixels;
  std::vector<T> col(static_cast<size_t>(rows * pixels));
  if (dw) std::fill(dw, dw + g.out_channels * rows, T(0));
  if (dx) std::fill(dx, dx + g.batch * x_sample, T(0));
  std::vector<double> acc_b(dbias ? static_cast<size_t>(g.out_channels) : 0, 0.0);
  for (int64_t b = 0; b < g.batch; ++b) {
    const T* gb = grad + b * y_sample;
    if (dw) {
      // dW [Cout, Cin*kh*kw] += g_b [Cout, Ho*Wo] @ col^T
      im2col(x + b * x_sample, g, col.data());
      gemm<T>(false, true, g.out_channels, rows, pixels, T(1), gb, pixels, col.data(), pixels, T(1),
              dw, rows);
    }
    if (dx) {
      // dcol = W^T @ g_b, then scattered back onto the image.
      gemm<T>(true, false, rows, pixels, g.out_channels, T(1), w, rows, gb, pixels, T(0),
              col.data(), pixels);
      col2im_add(col.data(), g, dx + b * x_sample);
    }
    if (dbias)
      for (int64_t o = 0; o < g.out_channels; ++o) {
        const T* gr = gb + o * pixels;
        double s = 0;
        for (int64_t p = 0; p < pixels; ++p) s += gr[p];
        acc_b[o] += s;
      }
  }
  if (dbias)
    for (int64_t o = 0; o < g.out_channels; ++o) dbias[o] = static_cast<T>(acc_b[o]);
}

#define IM_INSTANTIATE_CONV(T)                                                                  \
  template void causal_depthwise_conv1d<T>(const T*, const T*, const T*, T*,                    \
                                           const DwConv1dGeometry&);                            \
  template void causal_depthwise_conv1d_backward<T>(const T*, const T*, const T*, const T*, T*, \
                                                    T*, T*, const DwConv1dGeometry&);           \
  template void im2col<T>(const T*, const Conv2dGeometry&, T*);                                 \
  template void col2im_add<T>(const T*, const Conv2dGeometry&, T*);                             \
  template void conv2d<T>(const T*, const T*, const T*, T*, const Conv2dGeometry&);             \
  template void conv2d_backward<T>(const T*, const T*, const T*, T*, T*, T*, const Conv2dGeometry&);

IM_INSTANTIATE_CONV(float)
IM_INSTANTIATE_CONV(double)
#undef IM_INSTANTIATE_CONV

}  // namespace im::kernels::cpu
