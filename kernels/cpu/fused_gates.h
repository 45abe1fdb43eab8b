// CPU reference kernels of the mixer's fused gates (kernels/fused_gates_ops.h): float32 and
// float64, computed in T with the unfused ops' expressions; the parameter gradients are
// column sums accumulated in double over the rows in order (as sum_cols), so in float64
// every output equals the unfused composite exactly.
#pragma once

#include "kernels/fused_gates_ops.h"

namespace im::kernels::cpu {

// out (contiguous [rows, cols]) = (alpha_h * mean(ys) + alpha_g * g) * silu(z).
template <typename T>
void gated_fusion_forward(const GatedFusionArgs<T>& a, T* out);

// From dout (contiguous): dy = dout silu(z) alpha_h / len(ys), dg = dout silu(z) alpha_g,
// dz = dout fused silu'(z), dalpha_h = sum_rows dout silu(z) mean(ys),
// dalpha_g = sum_rows dout silu(z) g. Null outputs are skipped.
template <typename T>
void gated_fusion_backward(const GatedFusionArgs<T>& a, const T* dout,
                           const GatedFusionGrads<T>& d);

// out (contiguous) = sigmoid(pre + bias) * g.
template <typename T>
void sigmoid_gate_forward(const SigmoidGateArgs<T>& a, T* out);

// dpre = dout g s (1 - s), dbias = sum_rows dpre, dg = dout s with s = sigmoid(pre + bias).
template <typename T>
void sigmoid_gate_backward(const SigmoidGateArgs<T>& a, const T* dout,
                           const SigmoidGateGrads<T>& d);

}  // namespace im::kernels::cpu
