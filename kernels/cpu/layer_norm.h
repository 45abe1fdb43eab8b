// Fused CPU layer norm over the last axis of a contiguous [rows, cols] buffer.
// Statistics accumulate in double; forward saves each row's mean and 1/sqrt(var + eps)
// (biased variance) so backward need not recompute them.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

// y = (x - mean) * rstd * weight + bias; weight and bias ([cols]) may be null.
template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols, double eps);

// With xhat = (x - mean) * rstd and gw = g * weight (g without a weight):
//   dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)),
//   dweight = sum_rows g * xhat,  dbias = sum_rows g.
// Any of dx, dweight, dbias may be null (not needed); weight may be null.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* mean, const T* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols);

}  // namespace im::kernels::cpu
