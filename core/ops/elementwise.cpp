// Elementwise ops: broadcasting binary arithmetic and the unary activations.
#include <algorithm>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "kernels/cpu/elementwise.h"

#if IM_WITH_CUDA
#include "kernels/cuda/elementwise.h"
#endif

namespace im {

using kernels::BinaryOp;
using kernels::UnaryOp;
using kernels::UnaryParams;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    IM_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

void check_same_dtype_device(const Tensor& a, const Tensor& b, const char* op) {
  IM_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", a.describe(), " and ", b.describe());
  IM_CHECK(a.device() == b.device(), op, ": device mismatch, ", a.describe(), " and ",
           b.describe());
}

// Kernel launch for out = a op b, both already expanded to out's shape.
Tensor binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  check_same_dtype_device(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  const Tensor ea = a.detach().expand(shape), eb = b.detach().expand(shape);
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  dispatch_compute(a.dtype(), a.device(), name, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (a.device().is_cpu()) {
        kernels::cpu::binary<T>(op, static_cast<const T*>(ea.data_ptr()), ea.strides(),
                                static_cast<const T*>(eb.data_ptr()), eb.strides(),
                                static_cast<T*>(out.data_ptr()), shape);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::binary<T>(op, static_cast<const T*>(ea.data_ptr()), ea.strides(),
                             static_cast<const T*>(eb.data_ptr()), eb.strides(),
                             static_cast<T*>(out.data_ptr()), shape);
#endif
  });
  return out;
}

Tensor unary_kernel(UnaryOp op, UnaryParams p, const Tensor& x, const char* name) {
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), name, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::unary<T>(op, p, static_cast<const T*>(xc.data_ptr()),
                               static_cast<T*>(out.data_ptr()), out.numel());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::unary<T>(op, p, static_cast<const T*>(xc.data_ptr()),
                            static_cast<T*>(out.data_ptr()), out.numel());
#endif
  });
  return out;
}

Tensor unary_backward_kernel(UnaryOp op, UnaryParams p, const Tensor& g, const Tensor& x,
                             const Tensor& y, const char* name) {
  const Tensor gc = g.contiguous(), xc = x.contiguous();
  const Tensor yc = y.defined() ? y.contiguous() : Tensor();
  Tensor dx = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), name, [&]<typename T>() {
    const T* py = yc.defined() ? static_cast<const T*>(yc.data_ptr()) : nullptr;
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::unary_backward<T>(op, p, static_cast<const T*>(gc.data_ptr()),
                                        static_cast<const T*>(xc.data_ptr()), py,
                                        static_cast<T*>(dx.data_ptr()), dx.numel());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::unary_backward<T>(op, p, static_cast<const T*>(gc.data_ptr()),
                                     static_cast<const T*>(xc.data_ptr()), py,
                                     static_cast<T*>(dx.data_ptr()), dx.numel());
#endif
  });
  return dx;
}

// Whether the backward gets the forward output y. bfloat16 does not: its CUDA kernel
// recomputes y from x in float, because a y of 8 bits ruins derivatives such as 1 - y^2
// (tanh) and y (1 - y) (sigmoid) near saturation; not keeping y also saves its memory.
bool saves_output(UnaryOp op, DType dtype) {
  return kernels::backward_reads_output(op) && dtype != DType::BFloat16;
}

Tensor unary(UnaryOp op, UnaryParams p, const Tensor& x, const char* name) {
  Tensor out = unary_kernel(op, p, x, name);
  if (any_requires_grad({x})) {
    const Tensor xs = x.detach();
    const Tensor ys = saves_output(op, x.dtype()) ? out.detach() : Tensor();
    record_op(name, {x}, {out}, [op, p, xs, ys, name](const std::vector<Tensor>& g, const auto&) {
      return std::vector<Tensor>{unary_backward_kernel(op, p, g[0], xs, ys, name)};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::Add, a, b, "add");
  const Shape sa = a.shape(), sb = b.shape();
  record_op("add", {a, b}, {out}, [sa, sb](const std::vector<Tensor>& g, const auto& needs) {
    return std::vector<Tensor>{needs[0] ? sum_to(g[0], sa) : Tensor(),
                               needs[1] ? sum_to(g[0], sb) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::Sub, a, b, "sub");
  const Shape sa = a.shape(), sb = b.shape();
  record_op("sub", {a, b}, {out}, [sa, sb](const std::vector<Tensor>& g, const auto& needs) {
    return std::vector<Tensor>{needs[0] ? sum_to(g[0], sa) : Tensor(),
                               needs[1] ? sum_to(neg(g[0]), sb) : Tensor()};
  });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::Mul, a, b, "mul");
  if (any_requires_grad({a, b})) {
    const Tensor as = a.detach(), bs = b.detach();
    record_op("mul", {a, b}, {out}, [as, bs](const std::vector<Tensor>& g, const auto& needs) {
      return std::vector<Tensor>{needs[0] ? sum_to(mul(g[0], bs), as.shape()) : Tensor(),
                                 needs[1] ? sum_to(mul(g[0], as), bs.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_kernel(BinaryOp::Div, a, b, "div");
  if (any_requires_grad({a, b})) {
    const Tensor bs = b.detach(), ys = out.detach();
    const Shape sa = a.shape();
    record_op("div", {a, b}, {out}, [bs, ys, sa](const std::vector<Tensor>& g, const auto& needs) {
      const Tensor ga = div(g[0], bs);  // d/da = 1/b, d/db = -a/b^2 = -y/b
      return std::vector<Tensor>{needs[0] ? sum_to(ga, sa) : Tensor(),
                                 needs[1] ? sum_to(neg(mul(ga, ys)), bs.shape()) : Tensor()};
    });
  }
  return out;
}

namespace {

// out = a op s for a number s. The CPU reference broadcasts a 0-d tensor of a's dtype;
// the CUDA kernel takes s as an argument in the compute type, so a bfloat16 tensor's
// scalar keeps float precision (1/n in a mean is not rounded to 8 bits first). For
// float32 and float64 both see the same value, static_cast<T>(s).
Tensor scalar_kernel(BinaryOp op, const Tensor& a, double s, const char* name) {
  if (a.device().is_cpu())
    return binary_kernel(op, a, Tensor::full({}, s, a.dtype(), a.device()), name);
  const Tensor ad = a.detach();
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  dispatch_compute(a.dtype(), a.device(), name, [&]<typename T>() {
#if IM_WITH_CUDA
    kernels::cuda::binary_scalar<T>(op, static_cast<const T*>(ad.data_ptr()), ad.strides(), s,
                                    static_cast<T*>(out.data_ptr()), out.shape());
#endif
  });
  return out;
}

}  // namespace

Tensor add(const Tensor& a, double b) {
  Tensor out = scalar_kernel(BinaryOp::Add, a, b, "add");
  record_op("add", {a}, {out},
            [](const std::vector<Tensor>& g, const auto&) { return std::vector<Tensor>{g[0]}; });
  return out;
}
Tensor mul(const Tensor& a, double b) {
  Tensor out = scalar_kernel(BinaryOp::Mul, a, b, "mul");
  record_op("mul", {a}, {out}, [b](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{mul(g[0], b)};
  });
  return out;
}

Tensor neg(const Tensor& x) {
  return unary(UnaryOp::Neg, {}, x, "neg");
}
Tensor exp(const Tensor& x) {
  return unary(UnaryOp::Exp, {}, x, "exp");
}
Tensor log(const Tensor& x) {
  return unary(UnaryOp::Log, {}, x, "log");
}
Tensor sqrt(const Tensor& x) {
  return unary(UnaryOp::Sqrt, {}, x, "sqrt");
}
Tensor rsqrt(const Tensor& x) {
  return unary(UnaryOp::Rsqrt, {}, x, "rsqrt");
}
Tensor pow(const Tensor& x, double e) {
  return unary(UnaryOp::Pow, {e, 0}, x, "pow");
}
Tensor abs(const Tensor& x) {
  return unary(UnaryOp::Abs, {}, x, "abs");
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  IM_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return unary(UnaryOp::Clamp, {lo, hi}, x, "clamp");
}
Tensor tanh(const Tensor& x) {
  return unary(UnaryOp::Tanh, {}, x, "tanh");
}
Tensor sigmoid(const Tensor& x) {
  return unary(UnaryOp::Sigmoid, {}, x, "sigmoid");
}
Tensor silu(const Tensor& x) {
  return unary(UnaryOp::Silu, {}, x, "silu");
}
Tensor gelu_tanh(const Tensor& x) {
  return unary(UnaryOp::GeluTanh, {}, x, "gelu_tanh");
}
Tensor gelu_erf(const Tensor& x) {
  return unary(UnaryOp::GeluErf, {}, x, "gelu_erf");
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  IM_CHECK(beta > 0, "softplus: beta must be positive, got ", beta);
  return unary(UnaryOp::Softplus, {beta, threshold}, x, "softplus");
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator-(const Tensor& x) {
  return neg(x);
}
Tensor operator*(const Tensor& a, double b) {
  return mul(a, b);
}
Tensor operator*(double a, const Tensor& b) {
  return mul(b, a);
}
Tensor operator+(const Tensor& a, double b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, double b) {
  return add(a, -b);
}

void accumulate_into(Tensor& dst, const Tensor& src) {
  IM_CHECK(dst.is_contiguous(), "accumulate_into: destination ", dst.describe(),
           " must be contiguous");
  if (dst.dtype() == DType::Float32 && src.dtype() == DType::BFloat16) {
    // A bf16 gradient into its float32 slot (mixed precision): widened as it is added, so
    // the sum keeps float precision. One kernel on the GPU; the CPU widens, then adds.
    IM_CHECK(dst.device() == src.device(), "accumulate_into: device mismatch, ", dst.describe(),
             " and ", src.describe());
    const Tensor e = src.detach().expand(dst.shape());
    if (dst.device().is_cpu()) return accumulate_into(dst, e.to(DType::Float32));
#if IM_WITH_CUDA
    kernels::cuda::accumulate_widening(static_cast<float*>(dst.data_ptr()),
                                       static_cast<const bfloat16*>(e.data_ptr()), e.strides(),
                                       dst.shape());
#endif
    return;
  }
  check_same_dtype_device(dst, src, "accumulate_into");
  const Tensor e = src.detach().expand(dst.shape());
  dispatch_compute(dst.dtype(), dst.device(), "accumulate_into", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (dst.device().is_cpu()) {
        kernels::cpu::accumulate<T>(static_cast<T*>(dst.data_ptr()),
                                    static_cast<const T*>(e.data_ptr()), e.strides(), dst.shape());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::binary<T>(BinaryOp::Add, static_cast<const T*>(dst.data_ptr()), dst.strides(),
                             static_cast<const T*>(e.data_ptr()), e.strides(),
                             static_cast<T*>(dst.data_ptr()), dst.shape());
#endif
  });
}

}  // namespace im
