// softmax and log_softmax along any dim: the dim is moved last (permute + contiguous) so
// the kernel sees contiguous rows; the common last-dim case copies nothing.
#include "kernels/cpu/softmax.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/last_dim.h"
#include "core/ops/op_common.h"

namespace im {

namespace {

enum class Kind { Softmax, LogSoftmax };

Tensor softmax_impl(const Tensor& x, int64_t dim, Kind kind, const char* name) {
  IM_CHECK(x.defined(), name, ": input is undefined");
  detail::require_cpu(x, name);
  const detail::LastDimPlan p = detail::plan_last_dim(x.shape(), dim, name);
  const Tensor rows = detail::to_rows(x, p);
  Tensor y_rows = Tensor::empty(rows.shape(), x.dtype(), x.device());
  dispatch_float(x.dtype(), name, [&]<typename T>() {
    if (kind == Kind::Softmax) {
      kernels::cpu::softmax_forward<T>(rows.data<T>(), y_rows.data<T>(), p.rows, p.cols);
    } else {
      kernels::cpu::log_softmax_forward<T>(rows.data<T>(), y_rows.data<T>(), p.rows, p.cols);
    }
  });
  Tensor out = detail::from_rows(y_rows, p);
  if (any_requires_grad({x})) {
    // The backward reads the output in the kernel's row layout; keep that buffer
    // (it is `out` itself when dim is already last, hence the detach).
    const Tensor ys = y_rows.detach();
    record_op(name, {x}, {out}, [p, ys, kind, name](const std::vector<Tensor>& g, const auto&) {
      const Tensor g_rows = detail::to_rows(g[0], p);
      Tensor dx_rows = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      dispatch_float(ys.dtype(), name, [&]<typename T>() {
        if (kind == Kind::Softmax) {
          kernels::cpu::softmax_backward<T>(g_rows.data<T>(), ys.data<T>(), dx_rows.data<T>(),
                                            p.rows, p.cols);
        } else {
          kernels::cpu::log_softmax_backward<T>(g_rows.data<T>(), ys.data<T>(), dx_rows.data<T>(),
                                                p.rows, p.cols);
        }
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
