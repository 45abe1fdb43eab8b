// Fused CUDA layer norm over the last axis of a contiguous [rows, cols] buffer; the
// semantics of kernels/cpu/layer_norm.h (biased variance, saved mean and rstd). Forward and
// the input gradient run one warp per row (rows of up to 1024 columns) or one block per
// row; the weight and bias gradients are column sums over rows, coalesced, split over
// blocks into partial sums that a second kernel adds in a fixed order, so they are
// deterministic. Statistics and sums accumulate in double for float32/float64 (as on the
// CPU) and in float for bfloat16 (row_accum_t); bfloat16 x, weight, bias and gradients are
// storage only, and the saved mean and rstd are compute_t<T> (float for bfloat16: a
// bfloat16 mean would shift every xhat of a row whose mean is large against its spread).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/bfloat16.h"

namespace im::kernels::cuda {

// y = (x - mean) * rstd * weight + bias; weight and bias ([cols]) may be null.
template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, compute_t<T>* mean,
                        compute_t<T>* rstd, int64_t rows, int64_t cols, double eps);

// Device scratch (bytes) that layer_norm_backward needs for [rows, cols] when it computes
// dweight or dbias; 0 when none (workspace may then be null). The same for every T.
size_t layer_norm_backward_workspace_bytes(int64_t rows, int64_t cols);

// As kernels::cpu::layer_norm_backward; any of dx, dweight, dbias may be null (not needed),
// weight may be null.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const compute_t<T>* mean, const compute_t<T>* rstd,
                         const T* weight, T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols,
                         void* workspace);

}  // namespace im::kernels::cuda
