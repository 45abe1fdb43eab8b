// CUDA softmax and log-softmax over the last axis of a contiguous [rows, cols] buffer; the
// semantics of kernels/cpu/softmax.h (max-shifted, NaN for a row that is all -inf or holds
// a NaN, row sums in double). One fused kernel per call: one warp per row for rows of up
// to 1024 columns, one block per row beyond; the row is read from cache after the first
// pass. bfloat16 is storage only: values are widened to float, row sums accumulate in
// float (row_accum_t) and each output is rounded to bfloat16 once.
#pragma once

#include <cstdint>

namespace im::kernels::cuda {

template <typename T>
void softmax_forward(const T* x, T* y, int64_t rows, int64_t cols);

template <typename T>
void log_softmax_forward(const T* x, T* y, int64_t rows, int64_t cols);

// dx = y * (g - sum(g * y)), from the saved output y = softmax(x).
template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols);

// dx = g - exp(y) * sum(g), from the saved output y = log_softmax(x).
template <typename T>
void log_softmax_backward(const T* g, const T* y, T* dx, int64_t rows, int64_t cols);

}  // namespace im::kernels::cuda
