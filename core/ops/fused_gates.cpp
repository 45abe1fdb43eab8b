// The InfoMamba mixer's element-wise gates fused into one pass each way:
// gated_fusion replaces silu(z), the mean of the scan directions, the two alpha products,
// their sum and the gating product; sigmoid_gate replaces add bias, sigmoid and the product
// with g_hat. Activations are read in place when their rows are evenly spaced (z is the
// second half of in_proj's [.., 2E] output), so no slice is copied.
#include <tuple>
#include <utility>

#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"
#include "kernels/cpu/fused_gates.h"

#if IM_WITH_CUDA
#include "kernels/cuda/fused_gates.h"
#endif

namespace im {

namespace {

using kernels::GatedFusionArgs;
using kernels::GatedFusionGrads;
using kernels::RowOperand;
using kernels::SigmoidGateArgs;
using kernels::SigmoidGateGrads;

// An activation as the kernels read it: `rows` rows of the last dim, `stride` apart.
struct Rows {
  Tensor t;  // detached; keeps the memory alive for backward
  int64_t stride = 0;
};

// The element distance between consecutive rows of t (all dims but the last flattened)
// when its last dim is contiguous and the rows are evenly spaced; -1 when they are not.
int64_t even_row_stride(const Tensor& t) {
  const Shape& shape = t.shape();
  const Shape& strides = t.strides();
  const int64_t n = t.dim(), cols = shape[n - 1];
  if (cols > 1 && strides[n - 1] != 1) return -1;
  int64_t row_stride = -1, next = 0;  // `next`: the stride the next outer dim must have
  for (int64_t d = n - 2; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (row_stride < 0) {
      if (strides[d] < 0) return -1;
      row_stride = strides[d];
    } else if (strides[d] != next) {
      return -1;
    }
    next = strides[d] * shape[d];
  }
  return row_stride < 0 ? cols : row_stride;  // a single row: any stride serves
}

Rows as_rows(const Tensor& t) {
  if (!t.defined()) return {};
  const Tensor d = t.detach();
  const int64_t stride = even_row_stride(d);
  if (stride >= 0) return {d, stride};
  return {d.contiguous(), d.size(-1)};
}

template <typename T>
RowOperand<T> operand(const Rows& r) {
  return r.t.defined() ? RowOperand<T>{r.t.data<T>(), r.stride} : RowOperand<T>{};
}

template <typename T>
T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

Tensor param_or_none(const Tensor& p) {
  return p.defined() ? p.detach().contiguous() : Tensor();
}

// Device scratch for a CUDA backward (undefined when none is needed).
[[maybe_unused]] Tensor workspace(size_t bytes, Device device) {
  return bytes > 0 ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::UInt8, device) : Tensor();
}

[[maybe_unused]] void* data_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr() : nullptr;
}

Tensor grad_if(bool need, const Shape& shape, const Tensor& like) {
  return need ? Tensor::empty(shape, like.dtype(), like.device()) : Tensor();
}

void check_activation(const Tensor& t, const Tensor& like, const char* op, const char* arg,
                      const char* like_arg) {
  IM_CHECK(t.shape() == like.shape(), op, ": ", arg, " ", t.describe(), " must have the shape of ",
           like_arg, " ", like.describe());
  detail::check_same_dtype_device(t, like, op);
}

void check_param(const Tensor& p, const Tensor& x, const char* op, const char* arg) {
  if (!p.defined()) return;
  IM_CHECK(p.dim() == 1 && p.size(0) == x.size(-1), op, ": ", arg, " must be [", x.size(-1),
           "] to match the last dimension of ", x.describe(), ", got ", p.describe());
  detail::check_same_dtype_device(p, x, op);
}

// [rows, cols] of an activation of at least one dimension.
std::pair<int64_t, int64_t> rows_cols(const Tensor& x) {
  const int64_t cols = x.size(-1);
  return {cols > 0 ? x.numel() / cols : 0, cols};
}

struct GatedFusionSaved {
  Rows y0, y1, g, z;
  Tensor alpha_h, alpha_g;
  int64_t rows = 0, cols = 0;

  template <typename T>
  GatedFusionArgs<T> args() const {
    GatedFusionArgs<T> a;
    a.y0 = operand<T>(y0);
    a.y1 = operand<T>(y1);
    a.g = operand<T>(g);
    a.z = operand<T>(z);
    a.alpha_h = ptr_or_null<T>(alpha_h);
    a.alpha_g = ptr_or_null<T>(alpha_g);
    a.rows = rows;
    a.cols = cols;
    return a;
  }
};

struct SigmoidGateSaved {
  Rows pre, g;
  Tensor bias;
  int64_t rows = 0, cols = 0;

  template <typename T>
  SigmoidGateArgs<T> args() const {
    SigmoidGateArgs<T> a;
    a.pre = operand<T>(pre);
    a.g = operand<T>(g);
    a.bias = ptr_or_null<T>(bias);
    a.rows = rows;
    a.cols = cols;
    return a;
  }
};

}  // namespace

Tensor gated_fusion(const std::vector<Tensor>& ys, const Tensor& g, const Tensor& z,
                    const Tensor& alpha_h, const Tensor& alpha_g) {
  const char* op = "gated_fusion";
  IM_CHECK(z.defined(), op, ": z is undefined");
  IM_CHECK(z.dim() >= 1, op, ": z must have at least 1 dimension, got ", z.describe());
  IM_CHECK(ys.size() <= 2, op, ": at most 2 ys (the scan directions), got ", ys.size());
  for (const Tensor& y : ys) {
    IM_CHECK(y.defined(), op, ": an entry of ys is undefined");
    check_activation(y, z, op, "y", "z");
  }
  IM_CHECK(!ys.empty() || g.defined(), op,
           ": needs ys or g (with both streams off pass u as the only y)");
  if (g.defined()) check_activation(g, z, op, "g", "z");
  IM_CHECK(!alpha_h.defined() || !ys.empty(), op, ": alpha_h given but ys is empty");
  IM_CHECK(!alpha_g.defined() || g.defined(), op, ": alpha_g given but g is undefined");
  check_param(alpha_h, z, op, "alpha_h");
  check_param(alpha_g, z, op, "alpha_g");

  const Tensor y0 = !ys.empty() ? ys[0] : Tensor(), y1 = ys.size() > 1 ? ys[1] : Tensor();
  GatedFusionSaved s;
  s.y0 = as_rows(y0);
  s.y1 = as_rows(y1);
  s.g = as_rows(g);
  s.z = as_rows(z);
  s.alpha_h = param_or_none(alpha_h);
  s.alpha_g = param_or_none(alpha_g);
  std::tie(s.rows, s.cols) = rows_cols(z);
  Tensor out = Tensor::empty(z.shape(), z.dtype(), z.device());
  dispatch_compute(z.dtype(), z.device(), op, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (z.device().is_cpu()) {
        kernels::cpu::gated_fusion_forward<T>(s.args<T>(), out.data<T>());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::gated_fusion_forward<T>(s.args<T>(), out.data<T>());
#endif
  });

  if (any_requires_grad({y0, y1, g, z, alpha_h, alpha_g})) {
    record_op(op, {y0, y1, g, z, alpha_h, alpha_g}, {out},
              [s, op](const std::vector<Tensor>& grads, const auto& needs) {
                const Tensor dout = grads[0].contiguous();
                const Shape& shape = dout.shape();
                // Every y gets the same gradient: one buffer serves both.
                const Tensor dy = grad_if(needs[0] || needs[1], shape, dout);
                const Tensor dg = grad_if(needs[2], shape, dout),
                             dz = grad_if(needs[3], shape, dout);
                const Tensor dah = grad_if(needs[4], {s.cols}, dout);
                const Tensor dag = grad_if(needs[5], {s.cols}, dout);
                dispatch_compute(dout.dtype(), dout.device(), op, [&]<typename T>() {
                  const GatedFusionArgs<T> a = s.args<T>();
                  GatedFusionGrads<T> d;
                  d.dy = ptr_or_null<T>(dy);
                  d.dg = ptr_or_null<T>(dg);
                  d.dz = ptr_or_null<T>(dz);
                  d.dalpha_h = ptr_or_null<T>(dah);
                  d.dalpha_g = ptr_or_null<T>(dag);
                  if constexpr (has_cpu_kernel<T>) {
                    if (dout.device().is_cpu()) {
                      kernels::cpu::gated_fusion_backward<T>(a, dout.data<T>(), d);
                      return;
                    }
                  }
#if IM_WITH_CUDA
                  const Tensor ws = workspace(
                      kernels::cuda::gated_fusion_backward_workspace_bytes<T>(a, dout.data<T>(), d),
                      dout.device());
                  kernels::cuda::gated_fusion_backward<T>(a, dout.data<T>(), d, data_or_null(ws));
#endif
                });
                return std::vector<Tensor>{
                    needs[0] ? dy : Tensor(), needs[1] ? dy : Tensor(), dg, dz, dah, dag};
              });
  }
  return out;
}

Tensor sigmoid_gate(const Tensor& pre, const Tensor& bias, const Tensor& g) {
  const char* op = "sigmoid_gate";
  IM_CHECK(pre.defined() && g.defined(), op, ": pre and g must be defined");
  IM_CHECK(pre.dim() >= 1, op, ": pre must have at least 1 dimension, got ", pre.describe());
  check_activation(g, pre, op, "g", "pre");
  check_param(bias, pre, op, "bias");

  SigmoidGateSaved s;
  s.pre = as_rows(pre);
  s.g = as_rows(g);
  s.bias = param_or_none(bias);
  std::tie(s.rows, s.cols) = rows_cols(pre);
  Tensor out = Tensor::empty(pre.shape(), pre.dtype(), pre.device());
  dispatch_compute(pre.dtype(), pre.device(), op, [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (pre.device().is_cpu()) {
        kernels::cpu::sigmoid_gate_forward<T>(s.args<T>(), out.data<T>());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::sigmoid_gate_forward<T>(s.args<T>(), out.data<T>());
#endif
  });

  if (any_requires_grad({pre, bias, g})) {
    record_op(op, {pre, bias, g}, {out},
              [s, op](const std::vector<Tensor>& grads, const auto& needs) {
                const Tensor dout = grads[0].contiguous();
                const Tensor dpre = grad_if(needs[0], dout.shape(), dout);
                const Tensor dbias = grad_if(needs[1], {s.cols}, dout);
                const Tensor dg = grad_if(needs[2], dout.shape(), dout);
                dispatch_compute(dout.dtype(), dout.device(), op, [&]<typename T>() {
                  const SigmoidGateArgs<T> a = s.args<T>();
                  SigmoidGateGrads<T> d;
                  d.dpre = ptr_or_null<T>(dpre);
                  d.dbias = ptr_or_null<T>(dbias);
                  d.dg = ptr_or_null<T>(dg);
                  if constexpr (has_cpu_kernel<T>) {
                    if (dout.device().is_cpu()) {
                      kernels::cpu::sigmoid_gate_backward<T>(a, dout.data<T>(), d);
                      return;
                    }
                  }
#if IM_WITH_CUDA
                  const Tensor ws = workspace(
                      kernels::cuda::sigmoid_gate_backward_workspace_bytes<T>(a, dout.data<T>(), d),
                      dout.device());
                  kernels::cuda::sigmoid_gate_backward<T>(a, dout.data<T>(), d, data_or_null(ws));
#endif
                });
                return std::vector<Tensor>{dpre, dbias, dg};
              });
  }
  return out;
}

}  // namespace im
