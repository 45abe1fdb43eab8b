#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"

namespace im::kernels::cuda {

namespace {

constexpr int kMaxDims = 8;
constexpr int kThreads = 256;

// Shape and strides passed by value, so each thread can map a linear index to offsets.
struct StridedLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[3][kMaxDims] = {};  // up to three operands
};

StridedLayout make_layout(const std::vector<int64_t>& shape,
                          std::initializer_list<const std::vector<int64_t>*> strides) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw std::runtime_error("CUDA strided kernel: " + std::to_string(shape.size()) +
                             " dimensions, at most 8 supported");
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

__device__ __forceinline__ void offsets_of(const StridedLayout& l, int64_t linear, int count,
                                           int64_t* off) {
  for (int k = 0; k < count; ++k) off[k] = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t idx = linear % l.shape[d];
    linear /= l.shape[d];
    for (int k = 0; k < count; ++k) off[k] += idx * l.strides[k][d];
  }
}

int64_t blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return b < 65535 * 32 ? b : 65535 * 32;  // grid-stride loops cover the rest
}

template <typename T>
__global__ void unary_kernel(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    y[i] = unary_forward<T>(op, p, x[i]);
}

template <typename T>
__global__ void unary_backward_kernel(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y,
                                      T* dx, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    dx[i] = kernels::unary_backward<T>(op, p, g[i], x[i], y ? y[i] : T(0));
}

template <typename T>
__global__ void binary_kernel(BinaryOp op, const T* a, const T* b, T* out, StridedLayout l,
                              int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    int64_t off[3];
    offsets_of(l, i, 3, off);
    out[off[2]] = binary_forward<T>(op, a[off[0]], b[off[1]]);
  }
}

template <typename E>
__global__ void copy_kernel(const E* src, E* dst, StridedLayout l, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x) {
    int64_t off[2];
    offsets_of(l, i, 2, off);
    dst[off[1]] = src[off[0]];
  }
}

template <typename E>
__global__ void fill_kernel(E* dst, E value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    dst[i] = value;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

}  // namespace

template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  if (n == 0) return;
  unary_kernel<T><<<blocks_for(n), kThreads>>>(op, p, x, y, n);
  check_last_launch("unary kernel");
}

template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n) {
  if (n == 0) return;
  unary_backward_kernel<T><<<blocks_for(n), kThreads>>>(op, p, g, x, y, dx, n);
  check_last_launch("unary backward kernel");
}

template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  std::vector<int64_t> out_strides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    out_strides[d] = s;
    s *= shape[d];
  }
  const StridedLayout l = make_layout(shape, {&a_strides, &b_strides, &out_strides});
  binary_kernel<T><<<blocks_for(n), kThreads>>>(op, a, b, out, l, n);
  check_last_launch("binary kernel");
}

void copy_strided(const void* src, const std::vector<int64_t>& src_strides, void* dst,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape,
                  size_t elem_size) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const StridedLayout l = make_layout(shape, {&src_strides, &dst_strides});
  switch (elem_size) {
    case 1:
      copy_kernel<uint8_t><<<blocks_for(n), kThreads>>>(static_cast<const uint8_t*>(src),
                                                        static_cast<uint8_t*>(dst), l, n);
      break;
    case 2:
      copy_kernel<uint16_t><<<blocks_for(n), kThreads>>>(static_cast<const uint16_t*>(src),
                                                         static_cast<uint16_t*>(dst), l, n);
      break;
    case 4:
      copy_kernel<uint32_t><<<blocks_for(n), kThreads>>>(static_cast<const uint32_t*>(src),
                                                         static_cast<uint32_t*>(dst), l, n);
      break;
    case 8:
      copy_kernel<uint64_t><<<blocks_for(n), kThreads>>>(static_cast<const uint64_t*>(src),
                                                         static_cast<uint64_t*>(dst), l, n);
      break;
    default:
      throw std::runtime_error("CUDA copy: unsupported element size " + std::to_string(elem_size));
  }
  check_last_launch("strided copy kernel");
}

void fill_bytes(void* dst, const void* value, size_t elem_size, int64_t n) {
  if (n == 0) return;
  switch (elem_size) {
    case 1: {
      uint8_t v;
      std::memcpy(&v, value, 1);
      fill_kernel<uint8_t><<<blocks_for(n), kThreads>>>(static_cast<uint8_t*>(dst), v, n);
      break;
    }
    case 2: {
      uint16_t v;
      std::memcpy(&v, value, 2);
      fill_kernel<uint16_t><<<blocks_for(n), kThreads>>>(static_cast<uint16_t*>(dst), v, n);
      break;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, value, 4);
      fill_kernel<uint32_t><<<blocks_for(n), kThreads>>>(static_cast<uint32_t*>(dst), v, n);
      break;
    }
    case 8: {
      uint64_t v;
      std::memcpy(&v, value, 8);
      fill_kernel<uint64_t><<<blocks_for(n), kThreads>>>(static_cast<uint64_t*>(dst), v, n);
      break;
    }
    default:
      throw std::runtime_error("CUDA fill: unsupported element size " + std::to_string(elem_size));
  }
  check_last_launch("fill kernel");
}

#define IM_CUDA_INSTANTIATE(T)                                                            \
  template void unary<T>(UnaryOp, UnaryParams, const T*, T*, int64_t);                    \
  template void unary_backward<T>(UnaryOp, UnaryParams, const T*, const T*, const T*, T*, \
                                  int64_t);                                               \
  template void binary<T>(BinaryOp, const T*, const std::vector<int64_t>&, const T*,      \
                          const std::vector<int64_t>&, T*, const std::vector<int64_t>&);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)

}  // namespace im::kernels::cuda
