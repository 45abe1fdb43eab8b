// A Linear layer as one op: y = x W^T + b over the last dim of x, with the bias fused into
// the GEMM (a cuBLASLt epilogue on the GPU, C pre-filled with the bias on the CPU) and, in
// backward, the bias gradient taken from the weight-gradient GEMM g^T x (cuBLASLt's BGRADB
// epilogue) instead of a separate pass over all B*L rows of g.
//
// Under bf16 mixed precision a bfloat16 x and W may meet a float32 bias (a layer keeping
// its bias in float32): cuBLASLt then reads bfloat16 A/B and writes a float32 output with
// the float32 bias in its epilogue (no cast of the output). Backward casts the float32
// gradient to bfloat16 for the two GEMMs (dx and dW are bfloat16, like x and W) and sums
// the float32 gradient's rows for the float32 bias gradient.
#include <algorithm>
#include <type_traits>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/gemm.h"

#if IM_WITH_CUDA
#include "kernels/cuda/gemm.h"
#endif

namespace im {

namespace {

constexpr const char* kOp = "linear";

// x [..., in] as a row-major [rows, in] matrix with row stride `ld`: the tensor itself when
// its rows are evenly spaced (leading dims collapse to one stride), else a contiguous copy.
struct RowMatrix {
  Tensor t;
  int64_t ld = 1;
};

RowMatrix as_rows(const Tensor& x) {
  const int64_t n = x.dim(), in = x.size(-1);
  const int64_t width = std::max<int64_t>(in, 1);
  bool even = x.strides()[n - 1] == 1 || in <= 1;
  int64_t ld = -1, inner = 1;  // inner: rows spanned by the dims after d
  for (int64_t d = n - 2; d >= 0 && even; --d) {
    if (x.size(d) == 1) continue;
    const int64_t sd = x.strides()[d];
    if (ld < 0)
      ld = sd;
    else if (sd != ld * inner)
      even = false;
    inner *= x.size(d);
  }
  if (ld < 0) ld = width;  // a single row
  if (even && ld >= width) return {x, ld};
  return {x.contiguous(), width};
}

// W [out, in] in place when row-major (trans false: W itself, row stride ld) or
// column-major (trans true: W is the transpose of a row-major [in, out] with row stride
// ld), else a contiguous copy.
struct WeightOperand {
  Tensor t;
  bool trans = false;
  int64_t ld = 1;
};

WeightOperand prepare_weight(const Tensor& w) {
  const int64_t r = w.size(0), c = w.size(1);
  const int64_t sr = w.strides()[0], sc = w.strides()[1];
  if ((sc == 1 || c == 1) && (sr >= std::max<int64_t>(1, c) || r == 1))
    return {w, false, std::max<int64_t>({sr, c, 1})};
  if ((sr == 1 || r == 1) && (sc >= std::max<int64_t>(1, r) || c == 1))
    return {w, true, std::max<int64_t>({sc, r, 1})};
  return {w.contiguous(), false, std::max<int64_t>(c, 1)};
}

void check_args(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  IM_CHECK(x.defined() && weight.defined(), kOp, ": x and weight must be defined");
  IM_CHECK(x.dim() >= 1, kOp, ": x must be [..., in], got ", x.describe());
  IM_CHECK(weight.dim() == 2, kOp, ": weight must be [out, in], got ", weight.describe());
  IM_CHECK(weight.size(1) == x.size(-1), kOp, ": weight ", weight.describe(),
           " expects in = ", weight.size(1), " but x ", x.describe(), " has ", x.size(-1),
           " features");
  detail::check_same_dtype_device(x, weight, kOp);
  if (!bias.defined()) return;
  IM_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), kOp, ": bias must be [out] = [",
           weight.size(0), "], got ", bias.describe());
  IM_CHECK(bias.device() == x.device(), kOp, ": device mismatch, ", x.describe(), " and ",
           bias.describe());
  IM_CHECK(
      bias.dtype() == x.dtype() || (x.dtype() == DType::BFloat16 && bias.dtype() == DType::Float32),
      kOp, ": bias ", bias.describe(), " must have x's dtype (or be float32 for a bfloat16 ",
      "x), got x ", x.describe());
}

// What backward needs: the operands as the GEMMs read them and the problem's sizes.
struct Saved {
  RowMatrix x;
  WeightOperand w;
  Shape x_shape;
  DType out_dtype = DType::Float32;
  bool has_bias = false;
  bool mixed = false;  // bfloat16 x and W, float32 bias and output
  int64_t rows = 0, in = 0, out = 0;
};

Tensor linear_backward_dx(const Saved& s, const Tensor& g) {
  Tensor dx = Tensor::empty(s.x_shape, s.x.t.dtype(), s.x.t.device());
  if (dx.numel() == 0) return dx;
  if (s.out == 0) return Tensor::zeros(s.x_shape, s.x.t.dtype(), s.x.t.device());
  // dx[rows, in] = g[rows, out] W[out, in].
  dispatch_compute(g.dtype(), g.device(), kOp, [&]<typename T>() {
    const T one = convert<T>(1.0f), zero = convert<T>(0.0f);
    if constexpr (has_cpu_kernel<T>) {
      if (g.device().is_cpu()) {
        kernels::cpu::gemm<T>(false, s.w.trans, s.rows, s.in, s.out, one, g.data<T>(), s.out,
                              s.w.t.data<T>(), s.w.ld, zero, dx.data<T>(), s.in);
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::gemm<T>(false, s.w.trans, s.rows, s.in, s.out, one, g.data<T>(), s.out,
                           s.w.t.data<T>(), s.w.ld, zero, dx.data<T>(), s.in);
#else
    (void)one;
    (void)zero;
#endif
  });
  return dx;
}

// dW[out, in] = g^T x, and with `db` defined the bias gradient (the rows of g summed) from
// the same GEMM.
void linear_backward_weight(const Saved& s, const Tensor& g, const Tensor& dw, const Tensor& db) {
  if (!db.defined() && (s.rows == 0 || dw.numel() == 0)) {
    if (dw.numel() > 0) dw.zero_();
    return;
  }
  dispatch_compute(g.dtype(), g.device(), kOp, [&]<typename T>() {
    const T* gp = g.data<T>();
    const T* xp = s.x.t.data<T>();
    if constexpr (has_cpu_kernel<T>) {
      if (g.device().is_cpu()) {
        if (db.defined())
          kernels::cpu::gemm_bias_grad<T>(true, false, s.out, s.in, s.rows, gp, s.out, xp, s.x.ld,
                                          dw.data<T>(), s.in, db.data<T>());
        else
          kernels::cpu::gemm<T>(true, false, s.out, s.in, s.rows, T(1), gp, s.out, xp, s.x.ld, T(0),
                                dw.data<T>(), s.in);
        return;
      }
    }
#if IM_WITH_CUDA
    if (db.defined())
      kernels::cuda::gemm_bias_grad<T>(true, false, s.out, s.in, s.rows, gp, s.out, xp, s.x.ld,
                                       dw.data<T>(), s.in, db.data<T>());
    else
      kernels::cuda::gemm<T>(true, false, s.out, s.in, s.rows, convert<T>(1.0f), gp, s.out, xp,
                             s.x.ld, convert<T>(0.0f), dw.data<T>(), s.in);
#else
    (void)gp;
    (void)xp;
#endif
  });
}

std::vector<Tensor> linear_backward(const Saved& s, const Tensor& grad,
                                    const std::vector<bool>& needs) {
  // In the output's dtype (a bfloat16 output may get a float32 gradient), as [rows, out].
  const Tensor g = grad.to(s.out_dtype).contiguous();
  // The GEMMs run in the operands' dtype: the mixed case's float32 gradient is cast once.
  const Tensor gl = s.mixed ? g.to(DType::BFloat16) : g;
  const DType dt = s.x.t.dtype();
  const Device device = s.x.t.device();
  Tensor dx, dw, db;
  if (needs[0]) dx = linear_backward_dx(s, gl);
  const bool want_db = s.has_bias && needs.size() > 2 && needs[2];
  // The bias gradient comes out of the weight-gradient GEMM when both are wanted and share
  // a dtype; otherwise it is a plain sum over g's rows (float32 in the mixed case).
  const bool fused_db = want_db && needs[1] && !s.mixed;
  if (needs[1]) {
    dw = Tensor::empty({s.out, s.in}, dt, device);
    if (fused_db) db = Tensor::empty({s.out}, dt, device);
    linear_backward_weight(s, gl, dw, db);
  }
  if (want_db && !fused_db) db = sum(g.reshape({s.rows, s.out}), {0});
  return {dx, dw, db};
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_args(x, weight, bias);
  Saved s;
  s.x_shape = x.shape();
  s.in = x.size(-1);
  s.out = weight.size(0);
  s.rows = s.in > 0 ? x.numel() / s.in : shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));
  s.has_bias = bias.defined();
  s.out_dtype = s.has_bias ? bias.dtype() : x.dtype();
  s.mixed = s.has_bias && bias.dtype() != x.dtype();
  s.x = as_rows(x.detach());
  s.w = prepare_weight(weight.detach());
  const Tensor b = s.has_bias ? bias.detach().contiguous() : Tensor();

  Shape out_shape = x.shape();
  out_shape.back() = s.out;
  Tensor y = Tensor::empty(out_shape, s.out_dtype, x.device());
  if (y.numel() > 0) {
    // y[rows, out] = x[rows, in] op(B) + b with op(B) = W^T: B is W transposed, or the
    // row-major [in, out] matrix a column-major W is the transpose of.
    const bool trans_b = !s.w.trans;
    dispatch_compute(x.dtype(), x.device(), kOp, [&]<typename T>() {
      const T* xp = s.x.t.data<T>();
      const T* wp = s.w.t.data<T>();
      if constexpr (std::is_same_v<T, bfloat16>) {
        if (s.mixed) {
#if IM_WITH_CUDA
          kernels::cuda::gemm_bias<bfloat16, float>(false, trans_b, s.rows, s.out, s.in, xp, s.x.ld,
                                                    wp, s.w.ld, b.data<float>(), y.data<float>(),
                                                    s.out);
#endif
          return;
        }
      }
      const T* bp = s.has_bias ? b.data<T>() : nullptr;
      if constexpr (has_cpu_kernel<T>) {
        if (x.device().is_cpu()) {
          kernels::cpu::gemm_bias<T>(false, trans_b, s.rows, s.out, s.in, xp, s.x.ld, wp, s.w.ld,
                                     bp, y.data<T>(), s.out);
          return;
        }
      }
#if IM_WITH_CUDA
      kernels::cuda::gemm_bias<T, T>(false, trans_b, s.rows, s.out, s.in, xp, s.x.ld, wp, s.w.ld,
                                     bp, y.data<T>(), s.out);
#else
      (void)xp;
      (void)wp;
      (void)bp;
      (void)trans_b;
#endif
    });
  }

  if (any_requires_grad({x, weight, bias})) {
    record_op(kOp, {x, weight, bias}, {y},
              [s](const std::vector<Tensor>& g, const std::vector<bool>& needs) {
                return linear_backward(s, g[0], needs);
              });
  }
  return y;
}

}  // namespace im
