// CUDA row and column reductions; the semantics of kernels/cpu/reduce.h on device
// pointers, accumulated in double for float32 too (reads dominate, so this costs nothing
// measurable and keeps results within ~1e-7 of the CPU's). bfloat16 (GPU only) is
// accumulated in float (row_accum_t) and each result rounded to bfloat16 once. Rows of up to 1024
// columns are reduced one warp per row, longer ones one block per row; when there are too few rows
// to fill the GPU, long rows are cut into segments reduced by separate blocks, whose partial
// results a second kernel combines in a fixed order. Results are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace im::kernels::cuda {

// Device scratch (bytes, suitably aligned) that sum_rows, max_rows and var_rows need for
// [rows, cols]; 0 when none (workspace may then be null).
size_t row_reduce_workspace_bytes(int64_t rows, int64_t cols);

template <typename T>
void sum_rows(const T* x, T* out, int64_t rows, int64_t cols, void* workspace);

// out[r] = max_c x[r, c]; argmax[r] = first column that attains it (the first NaN wins).
template <typename T>
void max_rows(const T* x, T* out, int64_t* argmax, int64_t rows, int64_t cols, void* workspace);

// Gradient of max_rows: dx[r, c] = g[r] where c == argmax[r], 0 elsewhere (every element
// of dx is written).
template <typename T>
void max_rows_backward(const T* g, const int64_t* argmax, T* dx, int64_t rows, int64_t cols);

// Variance with `correction` (0 biased, 1 unbiased; NaN when cols <= correction) and the
// row means. Two passes over each segment; segments merge with Chan's formula.
template <typename T>
void var_rows(const T* x, T* var, T* mean, int64_t rows, int64_t cols, int64_t correction,
              void* workspace);

// Device scratch (bytes) that sum_cols needs for [rows, cols]; 0 when none.
size_t sum_cols_workspace_bytes(int64_t rows, int64_t cols);

// out[c] = sum_r x[r, c] (bias gradients, batch sums): threads run over columns, so every
// row is read coalesced; rows are split across blocks when there are few columns.
template <typename T>
void sum_cols(const T* x, T* out, int64_t rows, int64_t cols, void* workspace);

}  // namespace im::kernels::cuda
