// Layer norm over the last dimension through the fused CPU kernel; the per-row mean and
// rstd from forward are saved so backward is one pass per row.
#include <cmath>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/layer_norm.h"

#if IM_WITH_CUDA
#include "kernels/cuda/layer_norm.h"
#endif

namespace im {

namespace {

void check_param(const Tensor& p, const Tensor& x, int64_t d, const char* arg) {
  if (!p.defined()) return;
  IM_CHECK(p.dim() == 1 && p.size(0) == d, "layer_norm: ", arg, " must be [", d,
           "] to match the last dimension of ", x.describe(), ", got ", p.describe());
  detail::check_same_dtype_device(x, p, "layer_norm");
}

template <typename T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  IM_CHECK(x.defined(), "layer_norm: input is undefined");
  IM_CHECK(x.dim() >= 1, "layer_norm: input must have at least 1 dimension, got ", x.describe());
  const int64_t cols = x.size(-1);
  IM_CHECK(cols > 0, "layer_norm: the normalised (last) dimension of ", x.describe(), " is empty");
  IM_CHECK(std::isfinite(eps) && eps >= 0, "layer_norm: eps must be finite and >= 0, got ", eps);
  check_param(weight, x, cols, "weight");
  check_param(bias, x, cols, "bias");
  const int64_t rows = x.numel() / cols;

  const Tensor xc = x.detach().contiguous();
  const Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  // The saved statistics are in the compute type: float for bfloat16 x, whose rounding
  // would shift every xhat of a row whose mean is large against its spread.
  const DType stat_dtype = x.dtype() == DType::BFloat16 ? DType::Float32 : x.dtype();
  Tensor mean = Tensor::empty({rows}, stat_dtype, x.device());
  Tensor rstd = Tensor::empty({rows}, stat_dtype, x.device());
  dispatch_compute(x.dtype(), x.device(), "layer_norm", [&]<typename T>() {
    using C = compute_t<T>;
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::layer_norm_forward<T>(xc.data<T>(), ptr_or_null<T>(wc), ptr_or_null<T>(bc),
                                            out.data<T>(), mean.data<C>(), rstd.data<C>(), rows,
                                            cols, eps);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::layer_norm_forward<T>(xc.data<T>(), ptr_or_null<T>(wc), ptr_or_null<T>(bc),
                                         out.data<T>(), mean.data<C>(), rstd.data<C>(), rows, cols,
                                         eps);
#endif
  });

  if (any_requires_grad({x, weight, bias})) {
    const bool has_bias = bias.defined();
    record_op(
        "layer_norm", {x, weight, bias}, {out},
        [xc, wc, mean, rstd, has_bias, rows, cols](const std::vector<Tensor>& g,
                                                   const auto& needs) {
          const Tensor gc = g[0].contiguous();
          Tensor dx, dw, db;
          if (needs[0]) dx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
          if (needs[1]) dw = Tensor::empty(wc.shape(), xc.dtype(), xc.device());
          if (needs[2] && has_bias) db = Tensor::empty({cols}, xc.dtype(), xc.device());
          dispatch_compute(xc.dtype(), xc.device(), "layer_norm", [&]<typename T>() {
            using C = compute_t<T>;
            T* pdx = dx.defined() ? dx.data<T>() : nullptr;
            T* pdw = dw.defined() ? dw.data<T>() : nullptr;
            T* pdb = db.defined() ? db.data<T>() : nullptr;
            if constexpr (has_cpu_kernel<T>) {
              if (xc.device().is_cpu()) {
                kernels::cpu::layer_norm_backward<T>(gc.data<T>(), xc.data<T>(), mean.data<C>(),
                                                     rstd.data<C>(), ptr_or_null<T>(wc), pdx, pdw,
                                                     pdb, rows, cols);
                return;
              }
            }
#if IM_WITH_CUDA
            const size_t bytes =
                pdw || pdb ? kernels::cuda::layer_norm_backward_workspace_bytes(rows, cols) : 0;
            const Tensor ws =
                bytes > 0 ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::UInt8, xc.device())
                          : Tensor();
            kernels::cuda::layer_norm_backward<T>(
                gc.data<T>(), xc.data<T>(), mean.data<C>(), rstd.data<C>(), ptr_or_null<T>(wc), pdx,
                pdw, pdb, rows, cols, ws.defined() ? ws.data_ptr() : nullptr);
#endif
          });
          return std::vector<Tensor>{dx, dw, db};
        });
  }
  return out;
}

}  // namespace im
