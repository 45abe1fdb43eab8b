// CUDA kernels for the index-driven ops; same signatures and results as
// kernels/cpu/indexing.h (device pointers; every launch on the current stream). Index
// values are assumed valid: front-ends check them with first_out_of_range first.
// T is float, double or bfloat16 (values compared and summed in compute_t<T>); the
// accumulating kernels add into a compute_t<T> buffer, so for bfloat16 the caller passes
// a float32 accumulator and rounds it once.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/bfloat16.h"

namespace im::kernels::cuda {

// Position of the first idx[i] outside [0, limit), or -1 when all are in range.
// `scratch` is one int64 of device memory owned by the caller; the call waits for the
// stream (the answer goes to the host).
template <typename I>
int64_t first_out_of_range(const I* idx, int64_t n, int64_t limit, int64_t* scratch);

// out[i, :] = table[ids[i], :] for n ids; rows are `dim` wide and contiguous.
template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t dim);

// dtable[ids[i], :] += g[i, :] except where ids[i] == padding_idx (dtable zeroed by the
// caller). Atomic adds: repeated ids sum in an unspecified order, in compute_t<T>.
template <typename T, typename I>
void embedding_backward(const T* g, const I* ids, compute_t<T>* dtable, int64_t n, int64_t dim,
                        int64_t padding_idx);

// out[p] = x[p with coordinate `dim` replaced by index[p]] over `shape` (the index's
// shape); index and out contiguous, x strided. Up to 8 dimensions.
template <typename T, typename I>
void gather(const T* x, const std::vector<int64_t>& x_strides, int64_t dim, const I* index, T* out,
            const std::vector<int64_t>& shape);

// out[p with coordinate `dim` replaced by index[p]] += src[p] over `shape`; index
// contiguous, out and src strided. Atomic adds, in compute_t<T>.
template <typename T, typename I>
void scatter_add(compute_t<T>* out, const std::vector<int64_t>& out_strides, int64_t dim,
                 const I* index, const T* src, const std::vector<int64_t>& src_strides,
                 const std::vector<int64_t>& shape);

// out = cond ? a : b; operands strided (0 on broadcast dims), out contiguous.
template <typename T>
void where(const uint8_t* cond, const std::vector<int64_t>& cond_strides, const T* a,
           const std::vector<int64_t>& a_strides, const T* b, const std::vector<int64_t>& b_strides,
           T* out, const std::vector<int64_t>& shape);

// out = mask ? value : x; x and mask strided, out contiguous.
template <typename T>
void masked_fill(const T* x, const std::vector<int64_t>& x_strides, const uint8_t* mask,
                 const std::vector<int64_t>& mask_strides, T value, T* out,
                 const std::vector<int64_t>& shape);

// The k largest of each contiguous row, descending; equal values keep the lower column
// first and NaN ranks above every number (the CPU kernel's order exactly). One block per
// row, each element's rank counted against the row: meant for short rows (concepts,
// classes), O(cols^2 / threads) per row.
template <typename T>
void topk_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t cols, int64_t k);

}  // namespace im::kernels::cuda
