// CPU reference row reductions over a contiguous [rows, cols] buffer. Callers move the
// reduced dimensions last; accumulation is in double so float32 sums stay accurate
// and independent of blocking.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

template <typename T>
void sum_rows(const T* x, T* out, int64_t rows, int64_t cols);

// out[r] = max_c x[r, c]; argmax[r] = first column that attains it (NaN wins).
template <typename T>
void max_rows(const T* x, T* out, int64_t* argmax, int64_t rows, int64_t cols);

// Variance with `correction` (0 biased, 1 unbiased); also writes the row means.
template <typename T>
void var_rows(const T* x, T* var, T* mean, int64_t rows, int64_t cols, int64_t correction);

}  // namespace im::kernels::cpu

namespace im::kernels::cpu {

// out[c] = sum_r x[r, c] over a contiguous [rows, cols] buffer (double accumulation).
template <typename T>
void sum_cols(const T* x, T* out, int64_t rows, int64_t cols);

}  // namespace im::kernels::cpu
