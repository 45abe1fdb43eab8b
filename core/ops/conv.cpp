// Convolutions: the mixer's causal depthwise conv1d and the image patch embedding's conv2d.
// float32 and float64 on both devices; bfloat16 on the GPU (computed in float).
#include "kernels/cpu/conv.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"

#if IM_WITH_CUDA
#include "kernels/cuda/conv.h"
#endif

namespace im {

namespace {

template <typename T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void check_operand(const Tensor& x, const Tensor& t, const char* op) {
  detail::check_same_dtype_device(x, t, op);
}

// x itself when its channel dim is contiguous (the kernels take its row strides: the mixer
// passes half of a [B, L, 2E] projection), else a contiguous copy.
Tensor rows_of(const Tensor& x) {
  const Tensor xd = x.detach();
  return xd.strides()[2] == 1 || xd.size(2) == 1 ? xd : xd.contiguous();
}

kernels::cpu::DwConv1dGeometry dwconv1d_geometry(const Tensor& xs, int64_t ksize,
                                                 const DepthwiseConv1dOptions& opts) {
  kernels::cpu::DwConv1dGeometry geo;
  geo.batch = xs.size(0);
  geo.len = xs.size(1);
  geo.channels = xs.size(2);
  geo.ksize = ksize;
  // A stride of a dimension of size 1 is never stepped along: 0 keeps it from blocking the
  // CUDA kernels' 16-byte accesses.
  geo.x_batch_stride = geo.batch > 1 ? xs.strides()[0] : 0;
  geo.x_row_stride = geo.len > 1 ? xs.strides()[1] : 0;
  geo.reverse = opts.reverse;
  geo.silu = opts.silu;
  return geo;
}

}  // namespace

Tensor causal_depthwise_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const DepthwiseConv1dOptions& opts) {
  constexpr const char* op = "causal_depthwise_conv1d";
  IM_CHECK(x.defined() && weight.defined(), op, ": x and weight must be defined");
  IM_CHECK(x.dim() == 3, op, ": x must be [B, L, C], got ", x.describe());
  const int64_t channels = x.size(2);
  IM_CHECK(weight.dim() == 2 && weight.size(0) == channels && weight.size(1) >= 1, op,
           ": weight must be [C, K] = [", channels, ", K >= 1], got ", weight.describe());
  const int64_t ksize = weight.size(1);
  if (bias.defined())
    IM_CHECK(bias.dim() == 1 && bias.size(0) == channels, op, ": bias must be [C] = [", channels,
             "], got ", bias.describe());
  check_operand(x, weight, op);
  if (bias.defined()) check_operand(x, bias, op);

  const Tensor xs = rows_of(x), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  const kernels::cpu::DwConv1dGeometry geo = dwconv1d_geometry(xs, ksize, opts);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), op, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::causal_depthwise_conv1d<T>(xs.data<T>(), wc.data<T>(), data_or_null<T>(bc),
                                                 out.data<T>(), geo);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::causal_depthwise_conv1d<T>(xs.data<T>(), wc.data<T>(), data_or_null<T>(bc),
                                              out.data<T>(), geo);
#endif
  });

  if (any_requires_grad({x, weight, bias})) {
    // Saves x (a view where the input was one), w and b only: with silu the backward
    // recomputes the pre-activation from them.
    record_op(
        op, {x, weight, bias}, {out},
        [xs, wc, bc, geo](const std::vector<Tensor>& g, const auto& needs) {
          // In the op's dtype: a bfloat16 output may get a float32 gradient.
          const Tensor gc = g[0].to(xs.dtype()).contiguous();
          Tensor dx, dw, db;
          if (needs[0]) dx = Tensor::empty(xs.shape(), xs.dtype(), xs.device());
          if (needs[1]) dw = Tensor::empty(wc.shape(), wc.dtype(), wc.device());
          if (bc.defined() && needs[2]) db = Tensor::empty({geo.channels}, xs.dtype(), xs.device());
          dispatch_compute(xs.dtype(), xs.device(), "causal_depthwise_conv1d", [&]<typename T>() {
            if constexpr (has_cpu_kernel<T>) {
              if (xs.device().is_cpu()) {
                kernels::cpu::causal_depthwise_conv1d_backward<T>(
                    gc.data<T>(), xs.data<T>(), wc.data<T>(), data_or_null<T>(bc),
                    data_or_null<T>(dx), data_or_null<T>(dw), data_or_null<T>(db), geo);
                return;
              }
            }
#if IM_WITH_CUDA
            // Per-block partial sums of dw and dbias (float64, whatever T is).
            const Tensor ws =
                dw.defined() || db.defined()
                    ? Tensor::empty(
                          {kernels::cuda::causal_depthwise_conv1d_backward_workspace(geo)},
                          DType::Float64, xs.device())
                    : Tensor();
            kernels::cuda::causal_depthwise_conv1d_backward<T>(
                gc.data<T>(), xs.data<T>(), wc.data<T>(), data_or_null<T>(bc), data_or_null<T>(dx),
                data_or_null<T>(dw), data_or_null<T>(db), geo, data_or_null<double>(ws));
#endif
          });
          return std::vector<Tensor>{dx, dw, db};
        });
  }
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding) {
  constexpr const char* op = "conv2d";
  IM_CHECK(x.defined() && weight.defined(), op, ": x and weight must be defined");
  IM_CHECK(x.dim() == 4, op, ": x must be [B, Cin, H, W], got ", x.describe());
  IM_CHECK(weight.dim() == 4, op, ": weight must be [Cout, Cin, kh, kw], got ", weight.describe());
  IM_CHECK(weight.size(1) == x.size(1), op, ": weight ", weight.describe(),
           " expects Cin = ", weight.size(1), " but x ", x.describe(), " has ", x.size(1),
           " channels");
  IM_CHECK(weight.size(0) >= 1 && weight.size(1) >= 1 && weight.size(2) >= 1 && weight.size(3) >= 1,
           op, ": weight ", weight.describe(), " has an empty dimension");
  IM_CHECK(stride >= 1, op, ": stride must be >= 1, got ", stride);
  IM_CHECK(padding >= 0, op, ": padding must be >= 0, got ", padding);
  kernels::cpu::Conv2dGeometry geo;
  geo.batch = x.size(0);
  geo.in_channels = x.size(1);
  geo.height = x.size(2);
  geo.width = x.size(3);
  geo.out_channels = weight.size(0);
  geo.kernel_h = weight.size(2);
  geo.kernel_w = weight.size(3);
  geo.stride = stride;
  geo.padding = padding;
  const int64_t span_h = geo.height + 2 * padding - geo.kernel_h;
  const int64_t span_w = geo.width + 2 * padding - geo.kernel_w;
  IM_CHECK(span_h >= 0 && span_w >= 0, op, ": kernel ", geo.kernel_h, "x", geo.kernel_w,
           " is larger than the padded input ", geo.height + 2 * padding, "x",
           geo.width + 2 * padding, " of x ", x.describe());
  geo.out_h = span_h / stride + 1;
  geo.out_w = span_w / stride + 1;
  if (bias.defined())
    IM_CHECK(bias.dim() == 1 && bias.size(0) == geo.out_channels, op, ": bias must be [Cout] = [",
             geo.out_channels, "], got ", bias.describe());
  check_operand(x, weight, op);
  if (bias.defined()) check_operand(x, bias, op);

  const Tensor xc = x.detach().contiguous(), wc = weight.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out =
      Tensor::empty({geo.batch, geo.out_channels, geo.out_h, geo.out_w}, x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), op, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::conv2d<T>(xc.data<T>(), wc.data<T>(), data_or_null<T>(bc), out.data<T>(),
                                geo);
        return;
      }
    }
#if IM_WITH_CUDA
    // Column matrices of a chunk of samples and the chunk's GEMM output.
    const Tensor ws =
        Tensor::empty({kernels::cuda::conv2d_workspace<T>(geo)}, x.dtype(), x.device());
    kernels::cuda::conv2d<T>(xc.data<T>(), wc.data<T>(), data_or_null<T>(bc), out.data<T>(), geo,
                             ws.data<T>());
#endif
  });

  if (any_requires_grad({x, weight, bias})) {
    const bool has_bias = bias.defined();
    record_op(op, {x, weight, bias}, {out},
              [xc, wc, has_bias, geo](const std::vector<Tensor>& g, const auto& needs) {
                // In the op's dtype: a bfloat16 output may get a float32 gradient.
                const Tensor gc = g[0].to(xc.dtype()).contiguous();
                Tensor dx, dw, db;
                if (needs[0]) dx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
                if (needs[1]) dw = Tensor::empty(wc.shape(), wc.dtype(), wc.device());
                if (has_bias && needs[2])
                  db = Tensor::empty({geo.out_channels}, xc.dtype(), xc.device());
                dispatch_compute(xc.dtype(), xc.device(), "conv2d", [&]<typename T>() {
                  if constexpr (has_cpu_kernel<T>) {
                    if (xc.device().is_cpu()) {
                      kernels::cpu::conv2d_backward<T>(gc.data<T>(), xc.data<T>(), wc.data<T>(),
                                                       data_or_null<T>(dx), data_or_null<T>(dw),
                                                       data_or_null<T>(db), geo);
                      return;
                    }
                  }
#if IM_WITH_CUDA
                  const Tensor ws = Tensor::empty({kernels::cuda::conv2d_workspace<T>(geo)},
                                                  xc.dtype(), xc.device());
                  kernels::cuda::conv2d_backward<T>(gc.data<T>(), xc.data<T>(), wc.data<T>(),
                                                    data_or_null<T>(dx), data_or_null<T>(dw),
                                                    data_or_null<T>(db), geo, ws.data<T>());
#endif
                });
                return std::vector<Tensor>{dx, dw, db};
              });
  }
  return out;
}

}  // namespace im
