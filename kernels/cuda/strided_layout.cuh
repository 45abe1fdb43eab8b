// Shape and up to four operands' strides passed to a kernel by value, so each thread maps
// a linear index of the shape to an element offset in every operand (broadcast dims have
// stride 0). Shared by the strided elementwise, copy and selection kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace im::kernels::cuda {

constexpr int kMaxDims = 8;
constexpr int kMaxOperands = 4;

struct StridedLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxOperands][kMaxDims] = {};
};

inline StridedLayout make_layout(const std::vector<int64_t>& shape,
                                 std::initializer_list<const std::vector<int64_t>*> strides) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw std::runtime_error("CUDA strided kernel: " + std::to_string(shape.size()) +
                             " dimensions, at most 8 supported");
  if (strides.size() > static_cast<size_t>(kMaxOperands))
    throw std::runtime_error("CUDA strided kernel: at most 4 operands");
  StridedLayout l;
  l.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < l.ndim; ++d) l.shape[d] = shape[d];
  int k = 0;
  for (const auto* s : strides) {
    for (int d = 0; d < l.ndim; ++d) l.strides[k][d] = (*s)[d];
    ++k;
  }
  return l;
}

// Row-major strides of a contiguous tensor of `shape`.
inline std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

inline int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

__device__ __forceinline__ void offsets_of(const StridedLayout& l, int64_t linear, int count,
                                           int64_t* off) {
  for (int k = 0; k < count; ++k) off[k] = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t idx = linear % l.shape[d];
    linear /= l.shape[d];
    for (int k = 0; k < count; ++k) off[k] += idx * l.strides[k][d];
  }
}

}  // namespace im::kernels::cuda
