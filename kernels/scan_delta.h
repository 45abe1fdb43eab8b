// The step size Δ the selective scan uses from the Δ it is given (MODEL.md §3: Δ =
// softplus(W_Δ s + b_Δ)). The scan kernels take the projection W_Δ s and apply the bias
// and the softplus themselves, as Mamba's kernels do (delta_bias, delta_softplus), so the
// model makes no separate passes over [B, L, E] for them and bfloat16 activations keep a
// float Δ. Shared by the CPU reference and the CUDA kernels.
#pragma once

#include <cmath>

#include "kernels/host_device.h"

namespace im::kernels {

// softplus with β = 1 and threshold 20, as the softplus op: above the threshold x passes.
template <typename C>
IM_HD C scan_delta(C raw, C bias, bool softplus) {
  using std::exp, std::log1p;
  const C x = raw + bias;
  if (!softplus || x > C(20)) return x;
  return (x > C(0) ? x : C(0)) + log1p(exp(x > C(0) ? -x : x));
}

// dΔ / d raw (= dΔ / d bias).
template <typename C>
IM_HD C scan_delta_slope(C raw, C bias, bool softplus) {
  using std::exp;
  const C x = raw + bias;
  if (!softplus || x > C(20)) return C(1);
  return C(1) / (C(1) + exp(-x));
}

// The same slope from Δ itself: sigmoid(x) = 1 − e^(−softplus(x)), so a kernel that has Δ
// needs neither the raw value nor the bias. Above the threshold Δ = x and the slope is 1
// (at x within 2e-9 of the threshold this gives 1 where sigmoid(x) is 1 − 2e-9).
template <typename C>
IM_HD C scan_delta_slope_from_step(C step, bool softplus) {
  using std::expm1;
  if (!softplus || step > C(20)) return C(1);
  return -expm1(-step);
}

}  // namespace im::kernels
