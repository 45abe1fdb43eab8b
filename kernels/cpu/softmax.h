// CPU softmax and log-softmax over the last axis of a contiguous [rows, cols] buffer.
// Rows are shifted by their maximum before exponentiating, so large logits (1000) do not
// overflow; a row that is entirely -inf has no finite maximum and yields NaN, as in
// PyTorch. Row sums accumulate in double.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

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

}  // namespace im::kernels::cpu
