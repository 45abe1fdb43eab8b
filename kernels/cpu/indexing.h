// CPU kernels for index-driven ops: embedding lookup, gather / scatter-add along a dim,
// where / masked_fill selection, and per-row top-k. Index values are assumed valid here;
// front-ends check them with first_out_of_range first.
#pragma once

#include <cstdint>
#include <vector>

namespace im::kernels::cpu {

// Position of the first idx[i] outside [0, limit), or -1 when all are in range.
template <typename I>
int64_t first_out_of_range(const I* idx, int64_t n, int64_t limit);

// out[i, :] = table[ids[i], :] for n ids; rows are `dim` wide and contiguous.
template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t dim);

// dtable[ids[i], :] += g[i, :] except where ids[i] == padding_idx (dtable zeroed by caller).
template <typename T, typename I>
void embedding_backward(const T* g, const I* ids, T* dtable, int64_t n, int64_t dim,
                        int64_t padding_idx);

// out[p] = x[p with coordinate `dim` replaced by index[p]] for every position p of
// `shape` (the index's shape). index and out are contiguous; x is read through its strides.
template <typename T, typename I>
void gather(const T* x, const std::vector<int64_t>& x_strides, int64_t dim, const I* index, T* out,
            const std::vector<int64_t>& shape);

// out[p with coordinate `dim` replaced by index[p]] += src[p] for every position p of
// `shape` (the index's shape). index is contiguous; out and src go through their strides.
template <typename T, typename I>
void scatter_add(T* out, const std::vector<int64_t>& out_strides, int64_t dim, const I* index,
                 const T* src, const std::vector<int64_t>& src_strides,
                 const std::vector<int64_t>& shape);

// out = cond ? a : b; operands read through strides (0 on broadcast dims), out contiguous.
template <typename T>
void where(const uint8_t* cond, const std::vector<int64_t>& cond_strides, const T* a,
           const std::vector<int64_t>& a_strides, const T* b, const std::vector<int64_t>& b_strides,
           T* out, const std::vector<int64_t>& shape);

// out = mask ? value : x; x and mask read through strides, out contiguous.
template <typename T>
void masked_fill(const T* x, const std::vector<int64_t>& x_strides, const uint8_t* mask,
                 const std::vector<int64_t>& mask_strides, T value, T* out,
                 const std::vector<int64_t>& shape);

// The k largest of each contiguous row, descending; equal values keep the lower column
// first and NaN ranks above every number (as in PyTorch).
template <typename T>
void topk_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t cols, int64_t k);

}  // namespace im::kernels::cpu
