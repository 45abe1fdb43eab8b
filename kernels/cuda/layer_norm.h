// Fused CUDA layer norm over the last axis of a contiguous [rows, cols] buffer; the
// semantics of kernels/cpu/layer_norm.h (double statistics, biased variance, saved mean
// and rstd). Forward and the input gradient run one warp per row (rows of up to 1024
// columns) or one block per row; the weight and bias gradients are column sums over rows,
// coalesced, split over blocks into partial sums that a second kernel adds in a fixed
// order, so they are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace im::kernels::cuda {

// y = (x - mean) * rstd * weight + bias; weight and bias ([cols]) may be null.
template <typename T>
void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd,
                        int64_t rows, int64_t cols, double eps);

// Device scratch (bytes) that layer_norm_backward needs for [rows, cols] when it computes
// dweight or dbias; 0 when none (workspace may then be null).
size_t layer_norm_backward_workspace_bytes(int64_t rows, int64_t cols);

// As kernels::cpu::layer_norm_backward; any of dx, dweight, dbias may be null (not needed),
// weight may be null.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* mean, const T* rstd, const T* weight,
                         T* dx, T* dweight, T* dbias, int64_t rows, int64_t cols, void* workspace);

}  // namespace im::kernels::cuda
