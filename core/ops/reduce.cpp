// Reductions over a set of dims: the reduced dims are moved last so each output
// element is one contiguous row for the kernel.
#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/reduce.h"

#if IM_WITH_CUDA
#include "kernels/cuda/reduce.h"
#endif

namespace im {

namespace {

struct ReducePlan {
  std::vector<int64_t> perm;  // kept dims, then reduced dims
  std::vector<int64_t> inverse;
  Shape out_shape;   // as returned (keepdim or not)
  Shape keep_shape;  // with the reduced dims as 1
  Shape permuted_shape;
  int64_t rows = 1, cols = 1;
};

ReducePlan plan(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, const char* op) {
  const int64_t n = x.dim();
  std::vector<bool> reduced(n, dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, n, op);
    IM_CHECK(!reduced[w], op, ": dimension ", d, " listed twice");
    reduced[w] = true;
  }
  ReducePlan p;
  for (int64_t d = 0; d < n; ++d) {
    if (!reduced[d]) {
      p.perm.push_back(d);
      p.rows *= x.size(d);
      p.out_shape.push_back(x.size(d));
    } else if (keepdim) {
      p.out_shape.push_back(1);
    }
    p.keep_shape.push_back(reduced[d] ? 1 : x.size(d));
  }
  for (int64_t d = 0; d < n; ++d) {
    if (reduced[d]) {
      p.perm.push_back(d);
      p.cols *= x.size(d);
    }
  }
  p.inverse.resize(n);
  for (int64_t i = 0; i < n; ++i) p.inverse[p.perm[i]] = i;
  for (int64_t d : p.perm) p.permuted_shape.push_back(x.size(d));
  return p;
}

// True when the reduced dims are exactly the first r (0 < r < ndim) dims of a
// contiguous tensor: the plan's order is then (r, ..., n-1, 0, ..., r-1).
bool reduces_leading_dims(const Tensor& x, const ReducePlan& p) {
  const int64_t n = x.dim();
  if (!x.is_contiguous()) return false;
  for (int64_t r = 1; r < n; ++r) {
    bool match = true;
    for (int64_t i = 0; i < n && match; ++i) match = p.perm[i] == (i + r) % n;
    if (match) return true;
  }
  return false;
}

Tensor rows_view(const Tensor& x, const ReducePlan& p) {
  return x.detach().permute(p.perm).contiguous();
}

// Device scratch of `bytes` for a CUDA kernel (undefined when none is needed); it goes
// back to the allocator, ordered on the stream, when the caller drops it.
[[maybe_unused]] Tensor workspace(size_t bytes, Device device) {
  return bytes > 0 ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::UInt8, device) : Tensor();
}

[[maybe_unused]] void* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr() : nullptr;
}

// Broadcasts a reduced gradient back over the input's shape.
Tensor expand_back(const Tensor& g, const ReducePlan& p, const Shape& in_shape) {
  return g.reshape(p.keep_shape).expand(in_shape);
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const ReducePlan p = plan(x, dims, keepdim, "sum");
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  if (reduces_leading_dims(x, p)) {
    // Bias gradients and batch sums: read x in place as [reduced, kept] and add rows,
    // instead of permuting it into a copy.
    const Tensor xc = x.detach();
    dispatch_compute(x.dtype(), x.device(), "sum", [&]<typename T>() {
      if constexpr (has_cpu_kernel<T>) {
        if (x.device().is_cpu()) {
          kernels::cpu::sum_cols<T>(xc.data<T>(), out.data<T>(), p.cols, p.rows);
          return;
        }
      }
#if IM_WITH_CUDA
      const Tensor ws =
          workspace(kernels::cuda::sum_cols_workspace_bytes(p.cols, p.rows), x.device());
      kernels::cuda::sum_cols<T>(xc.data<T>(), out.data<T>(), p.cols, p.rows, ptr_or_null(ws));
#endif
    });
  } else {
    const Tensor rows = rows_view(x, p);
    dispatch_compute(x.dtype(), x.device(), "sum", [&]<typename T>() {
      if constexpr (has_cpu_kernel<T>) {
        if (x.device().is_cpu()) {
          kernels::cpu::sum_rows<T>(rows.data<T>(), out.data<T>(), p.rows, p.cols);
          return;
        }
      }
#if IM_WITH_CUDA
      const Tensor ws =
          workspace(kernels::cuda::row_reduce_workspace_bytes(p.rows, p.cols), x.device());
      kernels::cuda::sum_rows<T>(rows.data<T>(), out.data<T>(), p.rows, p.cols, ptr_or_null(ws));
#endif
    });
  }
  const Shape in_shape = x.shape();
  record_op("sum", {x}, {out}, [p, in_shape](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{expand_back(g[0], p, in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const ReducePlan p = plan(x, dims, keepdim, "mean");
  IM_CHECK(p.cols > 0, "mean: reducing ", x.describe(), " over an empty set");
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mul(sum(x, dims, keepdim), 1.0 / static_cast<double>(p.cols));
  }
  const Shape in_shape = x.shape();
  const double scale = 1.0 / static_cast<double>(p.cols);
  record_op("mean", {x}, {out}, [p, in_shape, scale](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{expand_back(mul(g[0], scale), p, in_shape)};
  });
  return out;
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  const ReducePlan p = plan(x, dims, keepdim, "max");
  IM_CHECK(p.cols > 0, "max: reducing ", x.describe(), " over an empty set");
  const Tensor rows = rows_view(x, p);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  Tensor argmax = Tensor::empty({p.rows}, DType::Int64, x.device());
  dispatch_compute(x.dtype(), x.device(), "max", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::max_rows<T>(rows.data<T>(), out.data<T>(), argmax.data<int64_t>(), p.rows,
                                  p.cols);
        return;
      }
    }
#if IM_WITH_CUDA
    const Tensor ws =
        workspace(kernels::cuda::row_reduce_workspace_bytes(p.rows, p.cols), x.device());
    kernels::cuda::max_rows<T>(rows.data<T>(), out.data<T>(), argmax.data<int64_t>(), p.rows,
                               p.cols, ptr_or_null(ws));
#endif
  });
  record_op("max", {x}, {out}, [p, argmax](const std::vector<Tensor>& g, const auto&) {
    // The gradient goes to the first position that attained the maximum.
    const Tensor gc = g[0].contiguous();
    Tensor grad_rows;
    dispatch_compute(gc.dtype(), gc.device(), "max", [&]<typename T>() {
      if constexpr (has_cpu_kernel<T>) {
        if (gc.device().is_cpu()) {
          grad_rows = Tensor::zeros({p.rows, p.cols}, gc.dtype());
          const T* pg = gc.data<T>();
          T* pr = grad_rows.data<T>();
          const int64_t* pa = argmax.data<int64_t>();
          for (int64_t r = 0; r < p.rows; ++r) pr[r * p.cols + pa[r]] = pg[r];
          return;
        }
      }
#if IM_WITH_CUDA
      grad_rows = Tensor::empty({p.rows, p.cols}, gc.dtype(), gc.device());
      kernels::cuda::max_rows_backward<T>(gc.data<T>(), argmax.data<int64_t>(), grad_rows.data<T>(),
                                          p.rows, p.cols);
#endif
    });
    return std::vector<Tensor>{grad_rows.reshape(p.permuted_shape).permute(p.inverse)};
  });
  return out;
}

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  IM_CHECK(correction >= 0, "var: correction must be >= 0, got ", correction);
  const ReducePlan p = plan(x, dims, keepdim, "var");
  const Tensor rows = rows_view(x, p);
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  Tensor row_mean = Tensor::empty(p.keep_shape, x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), "var", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::var_rows<T>(rows.data<T>(), out.data<T>(), row_mean.data<T>(), p.rows, p.cols,
                                  correction);
        return;
      }
    }
#if IM_WITH_CUDA
    const Tensor ws =
        workspace(kernels::cuda::row_reduce_workspace_bytes(p.rows, p.cols), x.device());
    kernels::cuda::var_rows<T>(rows.data<T>(), out.data<T>(), row_mean.data<T>(), p.rows, p.cols,
                               correction, ptr_or_null(ws));
#endif
  });
  if (any_requires_grad({x})) {
    const Tensor xs = x.detach();
    const double scale = 2.0 / static_cast<double>(p.cols - correction);
    record_op("var", {x}, {out},
              [p, xs, row_mean, scale](const std::vector<Tensor>& g, const auto&) {
                // d var / dx_i = 2 (x_i - mean) / (n - correction)
                const Tensor centred = sub(xs, row_mean);
                return std::vector<Tensor>{mul(mul(centred, scale), g[0].reshape(p.keep_shape))};
              });
  }
  return out;
}

}  // namespace im
