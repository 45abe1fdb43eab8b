// softmax and log_softmax along any dim: the dim is moved last (permute + contiguous) so
// the kernel sees contiguous rows; the common last-dim case copies nothing.
#include "kernels/cpu/softmax.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/last_dim.h"
#include "core/ops/op_common.h"

#if IM_WITH_CUDA
#include "kernels/cuda/softmax.h"
#endif

namespace im {

namespace {

enum class Kind { Softmax, LogSoftmax };

Tensor softmax_impl(const Tensor& x, int64_t dim, Kind kind, const char* name) {
  IM_CHECK(x.defined(), name, ": input is undefined");
  const detail::LastDimPlan p = detail::plan_last_dim(x.shape(), dim, name);
  const Tensor rows = detail::to_rows(x, p);
  Tensor y_rows = Tensor::empty(rows.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), name, [&]<typename T>() {
    const T* px = rows.data<T>();
    T* py = y_rows.data<T>();
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        if (kind == Kind::Softmax) {
          kernels::cpu::softmax_forward<T>(px, py, p.rows, p.cols);
        } else {
          kernels::cpu::log_softmax_forward<T>(px, py, p.rows, p.cols);
        }
        return;
      }
    }
#if IM_WITH_CUDA
    if (kind == Kind::Softmax) {
      kernels::cuda::softmax_forward<T>(px, py, p.rows, p.cols);
    } else {
      kernels::cuda::log_softmax_forward<T>(px, py, p.rows, p.cols);
    }
#endif
  });
  Tensor out = detail::from_rows(y_rows, p);
  if (any_requires_grad({x})) {
    // The backward reads the output in the kernel's row layout; keep that buffer
    // (it is `out` itself when dim is already last, hence the detach).
    const Tensor ys = y_rows.detach();
    record_op(name, {x}, {out}, [p, ys, kind, name](const std::vector<Tensor>& g, const auto&) {
      const Tensor g_rows = detail::to_rows(g[0], p);
      Tensor dx_rows = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      dispatch_compute(ys.dtype(), ys.device(), name, [&]<typename T>() {
        const T* pg = g_rows.data<T>();
        const T* py = ys.data<T>();
        T* pdx = dx_rows.data<T>();
        if constexpr (has_cpu_kernel<T>) {
          if (ys.device().is_cpu()) {
            if (kind == Kind::Softmax) {
              kernels::cpu::softmax_backward<T>(pg, py, pdx, p.rows, p.cols);
            } else {
              kernels::cpu::log_softmax_backward<T>(pg, py, pdx, p.rows, p.cols);
            }
            return;
          }
        }
#if IM_WITH_CUDA
        if (kind == Kind::Softmax) {
          kernels::cuda::softmax_backward<T>(pg, py, pdx, p.rows, p.cols);
        } else {
          kernels::cuda::log_softmax_backward<T>(pg, py, pdx, p.rows, p.cols);
        }
#endif
      });
      return std::vector<Tensor>{detail::from_rows(dx_rows, p)};
    });
  }
  return out;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(x, dim, Kind::Softmax, "softmax");
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(x, dim, Kind::LogSoftmax, "log_softmax");
}

}  // namespace im
