#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "kernels/cuda/indexing.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/strided_layout.cuh"

namespace im::kernels::cuda {

namespace {

// The strided walk covers every coordinate except `dim`'s, which comes from the index.
std::vector<int64_t> without_dim(std::vector<int64_t> strides, int64_t dim) {
  strides[dim] = 0;
  return strides;
}

// Blocks for a kernel with one block per row (it strides over rows beyond the cap).
unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 * 32 ? (rows > 0 ? rows : 1) : 65535 * 32);
}

template <typename I>
__global__ void first_out_of_range_kernel(const I* idx, int64_t n, int64_t limit,
                                          unsigned long long* first) {
  IM_GRID_STRIDE_LOOP(i, n) {
    const int64_t v = static_cast<int64_t>(idx[i]);
    if (v < 0 || v >= limit) atomicMin(first, static_cast<unsigned long long>(i));
  }
}

template <typename T, typename I>
__global__ void embedding_forward_kernel(const T* table, const I* ids, T* out, int64_t n,
                                         int64_t dim) {
  IM_GRID_STRIDE_LOOP(i, n * dim) {
    const int64_t r = i / dim, c = i - r * dim;
    out[i] = table[static_cast<int64_t>(ids[r]) * dim + c];
  }
}

template <typename T, typename I>
__global__ void embedding_backward_kernel(const T* g, const I* ids, compute_t<T>* dtable, int64_t n,
                                          int64_t dim, int64_t padding_idx) {
  IM_GRID_STRIDE_LOOP(i, n * dim) {
    const int64_t r = i / dim, c = i - r * dim;
    const int64_t id = static_cast<int64_t>(ids[r]);
    if (id != padding_idx) atomicAdd(dtable + id * dim + c, convert<compute_t<T>>(g[i]));
  }
}

// Operand 0: x without `dim`'s stride; index and out are contiguous (offset i).
template <typename T, typename I>
__global__ void gather_kernel(const T* x, int64_t step, const I* index, T* out, StridedLayout l,
                              int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    offsets_of(l, i, 1, off);
    out[i] = x[off[0] + static_cast<int64_t>(index[i]) * step];
  }
}

// Operand 0: out without `dim`'s stride, operand 1: src; index contiguous.
template <typename T, typename I>
__global__ void scatter_add_kernel(compute_t<T>* out, int64_t step, const I* index, const T* src,
                                   StridedLayout l, int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    offsets_of(l, i, 2, off);
    atomicAdd(out + off[0] + static_cast<int64_t>(index[i]) * step,
              convert<compute_t<T>>(src[off[1]]));
  }
}

template <typename T>
__global__ void where_kernel(const uint8_t* cond, const T* a, const T* b, T* out, StridedLayout l,
                             int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[4];
    offsets_of(l, i, 4, off);
    out[off[3]] = cond[off[0]] ? a[off[1]] : b[off[2]];
  }
}

template <typename T>
__global__ void masked_fill_kernel(const T* x, const uint8_t* mask, T value, T* out,
                                   StridedLayout l, int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    offsets_of(l, i, 3, off);
    out[off[2]] = mask[off[1]] ? value : x[off[0]];
  }
}

// The CPU kernel's strict total order: NaN first, then larger values, then lower columns.
// Compared in compute_t (bfloat16 widens exactly, so its order is the float order).
template <typename C>
__device__ __forceinline__ bool ranks_before(C vi, int64_t i, C vj, int64_t j) {
  const bool ni = isnan(vi), nj = isnan(vj);
  if (ni != nj) return ni;
  if (!ni && vi != vj) return vi > vj;
  return i < j;
}

// One block per row (grid-stride over rows). Each thread takes columns j and counts the
// columns ranked before j; since the order is total, ranks are distinct and the k with
// rank < k are written straight to their sorted slot (the stored value, bits unchanged).
template <typename T>
__global__ void topk_rows_kernel(const T* x, T* values, int64_t* indices, int64_t rows,
                                 int64_t cols, int64_t k) {
  using C = compute_t<T>;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const C vj = convert<C>(xr[j]);
      int64_t rank = 0;
      for (int64_t i = 0; i < cols && rank < k; ++i)
        if (ranks_before(convert<C>(xr[i]), i, vj, j)) ++rank;
      if (rank < k) {
        values[r * k + rank] = xr[j];
        indices[r * k + rank] = j;
      }
    }
  }
}

}  // namespace

template <typename I>
int64_t first_out_of_range(const I* idx, int64_t n, int64_t limit, int64_t* scratch) {
  if (n == 0) return -1;
  // All bytes 0xFF: UINT64_MAX for the atomicMin, -1 when read back as int64.
  check_cuda(cudaMemsetAsync(scratch, 0xFF, sizeof(int64_t), stream()), "index range check memset");
  first_out_of_range_kernel<I><<<blocks_for(n), kThreads, 0, stream()>>>(
      idx, n, limit, reinterpret_cast<unsigned long long*>(scratch));
  check_last_launch("index range check kernel");
  int64_t first = -1;
  memcpy_device_to_host(&first, scratch, sizeof(int64_t));  // waits for the stream
  return first;
}

template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t dim) {
  if (n * dim == 0) return;
  embedding_forward_kernel<T, I>
      <<<blocks_for(n * dim), kThreads, 0, stream()>>>(table, ids, out, n, dim);
  check_last_launch("embedding forward kernel");
}

template <typename T, typename I>
void embedding_backward(const T* g, const I* ids, compute_t<T>* dtable, int64_t n, int64_t dim,
                        int64_t padding_idx) {
  if (n * dim == 0) return;
  embedding_backward_kernel<T, I>
      <<<blocks_for(n * dim), kThreads, 0, stream()>>>(g, ids, dtable, n, dim, padding_idx);
  check_last_launch("embedding backward kernel");
}

template <typename T, typename I>
void gather(const T* x, const std::vector<int64_t>& x_strides, int64_t dim, const I* index, T* out,
            const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> xs = without_dim(x_strides, dim);
  const StridedLayout l = make_layout(shape, {&xs});
  gather_kernel<T, I>
      <<<blocks_for(n), kThreads, 0, stream()>>>(x, x_strides[dim], index, out, l, n);
  check_last_launch("gather kernel");
}

template <typename T, typename I>
void scatter_add(compute_t<T>* out, const std::vector<int64_t>& out_strides, int64_t dim,
                 const I* index, const T* src, const std::vector<int64_t>& src_strides,
                 const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> os = without_dim(out_strides, dim);
  const StridedLayout l = make_layout(shape, {&os, &src_strides});
  scatter_add_kernel<T, I>
      <<<blocks_for(n), kThreads, 0, stream()>>>(out, out_strides[dim], index, src, l, n);
  check_last_launch("scatter_add kernel");
}

template <typename T>
void where(const uint8_t* cond, const std::vector<int64_t>& cond_strides, const T* a,
           const std::vector<int64_t>& a_strides, const T* b, const std::vector<int64_t>& b_strides,
           T* out, const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> os = row_major_strides(shape);
  const StridedLayout l = make_layout(shape, {&cond_strides, &a_strides, &b_strides, &os});
  where_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(cond, a, b, out, l, n);
  check_last_launch("where kernel");
}

template <typename T>
void masked_fill(const T* x, const std::vector<int64_t>& x_strides, const uint8_t* mask,
                 const std::vector<int64_t>& mask_strides, T value, T* out,
                 const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> os = row_major_strides(shape);
  const StridedLayout l = make_layout(shape, {&x_strides, &mask_strides, &os});
  masked_fill_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(x, mask, value, out, l, n);
  check_last_launch("masked_fill kernel");
}

template <typename T>
void topk_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t cols, int64_t k) {
  if (k == 0 || rows == 0) return;
  // A warp for short rows, up to kThreads threads for longer ones.
  int threads = static_cast<int>(cols < kThreads ? cols : kThreads);
  threads = (threads + 31) / 32 * 32;
  topk_rows_kernel<T>
      <<<row_blocks(rows), threads, 0, stream()>>>(x, values, indices, rows, cols, k);
  check_last_launch("topk kernel");
}

#define IM_CUDA_INDEXING_INSTANTIATE_T_I(T, I)                                                   \
  template void embedding_forward<T, I>(const T*, const I*, T*, int64_t, int64_t);               \
  template void embedding_backward<T, I>(const T*, const I*, compute_t<T>*, int64_t, int64_t,    \
                                         int64_t);                                               \
  template void gather<T, I>(const T*, const std::vector<int64_t>&, int64_t, const I*, T*,       \
                             const std::vector<int64_t>&);                                       \
  template void scatter_add<T, I>(compute_t<T>*, const std::vector<int64_t>&, int64_t, const I*, \
                                  const T*, const std::vector<int64_t>&,                         \
                                  const std::vector<int64_t>&);

#define IM_CUDA_INDEXING_INSTANTIATE_T(T)                                                        \
  IM_CUDA_INDEXING_INSTANTIATE_T_I(T, int32_t)                                                   \
  IM_CUDA_INDEXING_INSTANTIATE_T_I(T, int64_t)                                                   \
  template void where<T>(const uint8_t*, const std::vector<int64_t>&, const T*,                  \
                         const std::vector<int64_t>&, const T*, const std::vector<int64_t>&, T*, \
                         const std::vector<int64_t>&);                                           \
  template void masked_fill<T>(const T*, const std::vector<int64_t>&, const uint8_t*,            \
                               const std::vector<int64_t>&, T, T*, const std::vector<int64_t>&); \
  template void topk_rows<T>(const T*, T*, int64_t*, int64_t, int64_t, int64_t);

IM_CUDA_INDEXING_INSTANTIATE_T(float)
IM_CUDA_INDEXING_INSTANTIATE_T(double)
IM_CUDA_INDEXING_INSTANTIATE_T(bfloat16)
template int64_t first_out_of_range<int32_t>(const int32_t*, int64_t, int64_t, int64_t*);
template int64_t first_out_of_range<int64_t>(const int64_t*, int64_t, int64_t, int64_t*);

#undef IM_CUDA_INDEXING_INSTANTIATE_T
#undef IM_CUDA_INDEXING_INSTANTIATE_T_I

}  // namespace im::kernels::cuda
