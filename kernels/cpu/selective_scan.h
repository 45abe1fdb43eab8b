// CPU reference of the selective SSM scan (docs/MODEL.md §3), sequential over time.
//
//   x_t = u_t + inject_t
//   h_t[e,n] = exp(delta_t[e] A[e,n]) h_{t-1}[e,n] + delta_t[e] Bm_t[n] x_t[e]
//   y_t[e]   = sum_n Cm_t[n] h_t[e,n] + D[e] u_t[e]
//
// Layouts (contiguous): u, delta, inject, y [B, L, E]; A [E, N]; Bm, Cm [B, L, N]; D [E];
// delta_bias [E]. The state h [E, N] is kept in T.
//
// delta_t[e] above is the effective step scan_delta(delta, delta_bias, softplus_delta)
// (kernels/scan_delta.h): the given delta plus delta_bias (null: no bias), through softplus
// when softplus_delta is set. Backward then returns the gradient of the given delta and,
// when ddelta_bias is not null, of the bias. `reverse` visits t = L-1 .. 0 (h starts at zero
// before the first visited step); y is written in the original time order.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

struct ScanDims {
  int64_t batch = 0, len = 0, inner = 0, state = 0;  // B, L, E, N
  bool reverse = false;
  bool softplus_delta = false;  // delta_t = softplus(delta + delta_bias)
};

// inject and delta_bias may be null (no injection, no bias).
template <typename T>
void selective_scan(const T* u, const T* delta, const T* A, const T* Bm, const T* Cm, const T* D,
                    const T* inject, const T* delta_bias, T* y, const ScanDims& d);

// Gradients of the scan for dy [B, L, E]. Forward states are recomputed one sample at a
// time, so nothing beyond the inputs has to be kept between forward and backward.
// Every output is overwritten; dinject and ddelta_bias may be null (not wanted), the others
// may not.
template <typename T>
void selective_scan_backward(const T* dy, const T* u, const T* delta, const T* A, const T* Bm,
                             const T* Cm, const T* D, const T* inject, const T* delta_bias, T* du,
                             T* ddelta, T* dA, T* dBm, T* dCm, T* dD, T* dinject, T* ddelta_bias,
                             const ScanDims& d);

}  // namespace im::kernels::cpu
