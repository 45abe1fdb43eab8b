// Operands and per-element math of the fused gates of the InfoMamba mixer, shared by the CPU
// reference kernels and the CUDA kernels (kernels/{cpu,cuda}/fused_gates.h):
//   gated_fusion: out = (alpha_h * mean(ys) + alpha_g * g) * silu(z)
//   sigmoid_gate: out = sigmoid(pre + bias) * g
// Each expression is evaluated in the same order as the unfused ops it replaces (mul, add,
// silu, sigmoid of elementwise_ops.h), so in float64 the fused op equals the composite bit
// for bit and the composite stays a valid reference.
#pragma once

#include <cstdint>

#include "kernels/elementwise_ops.h"
#include "kernels/host_device.h"

namespace im::kernels {

// An activation read as `rows` rows of `cols` contiguous elements, row r at p + r * stride:
// a contiguous tensor (stride = cols), or a view such as the second half of the last dim of
// a [..., 2E] tensor (stride 2E), read in place. p null: the operand is absent.
template <typename T>
struct RowOperand {
  const T* p = nullptr;
  int64_t stride = 0;
};

// ys are y0 (and y1: mean of two scan directions); either stream may be absent (y0 or g
// null), not both. A null alpha_h / alpha_g ([cols]) reads as 1.
template <typename T>
struct GatedFusionArgs {
  RowOperand<T> y0, y1, g, z;
  const T* alpha_h = nullptr;
  const T* alpha_g = nullptr;
  int64_t rows = 0, cols = 0;
};

// Gradients, each contiguous [rows, cols] ([cols] for the alphas) or null (not needed).
// dy is the gradient of every y (they are equal: each enters the mean with weight 1/len).
template <typename T>
struct GatedFusionGrads {
  T* dy = nullptr;
  T* dg = nullptr;
  T* dz = nullptr;
  T* dalpha_h = nullptr;
  T* dalpha_g = nullptr;
};

template <typename T>
struct SigmoidGateArgs {
  RowOperand<T> pre, g;
  const T* bias = nullptr;  // [cols]; null reads as 0
  int64_t rows = 0, cols = 0;
};

template <typename T>
struct SigmoidGateGrads {
  T* dpre = nullptr;
  T* dbias = nullptr;
  T* dg = nullptr;
};

// mean(ys): y0 alone, or (y0 + y1) * 0.5 as mul(add(y0, y1), 0.5).
template <typename C>
IM_HD C mean_of(C y0, C y1, bool two) {
  return two ? (y0 + y1) * C(0.5) : y0;
}

// alpha_h * m + alpha_g * g with either stream absent, as add(mul(m, ah), mul(g, ag)).
template <typename C>
IM_HD C fused_of(bool has_y, C m, C ah, bool has_g, C g, C ag) {
  if (!has_y) return g * ag;
  const C h = m * ah;
  return has_g ? h + g * ag : h;
}

// silu(z) = z * s and its derivative g * s * (1 + z (1 - s)), s = sigmoid(z): the
// expressions of UnaryOp::Silu.
template <typename C>
IM_HD C silu_from(C z, C s) {
  return z * s;
}
template <typename C>
IM_HD C silu_grad_from(C g, C z, C s) {
  return g * s * (C(1) + z * (C(1) - s));
}

// d sigmoid(x) = g * s * (1 - s), the expression of UnaryOp::Sigmoid.
template <typename C>
IM_HD C sigmoid_grad_from(C g, C s) {
  return g * s * (C(1) - s);
}

}  // namespace im::kernels
