#include <cuda_runtime.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/bfloat16.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/strided_layout.cuh"

namespace im::kernels::cuda {

namespace {

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
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    offsets_of(l, i, 3, off);
    out[off[2]] = binary_forward<T>(op, a[off[0]], b[off[1]]);
  }
}

// V elements of T loaded or stored as one access (16 bytes for float ×4, double ×2).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// The common case after coalescing: out contiguous, each input contiguous (step 1) or a
// single broadcast element (step 0). V > 1 needs every step-1 pointer 16-byte aligned.
template <typename T, int V>
__global__ void binary_flat_kernel(BinaryOp op, const T* a, int a_step, const T* b, int b_step,
                                   T* out, int64_t n) {
  const int64_t packs = n / V;
  IM_GRID_STRIDE_LOOP(p, packs) {
    Pack<T, V> x, y, z;
    if (a_step) {
      x = reinterpret_cast<const Pack<T, V>*>(a)[p];
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) x.v[j] = a[0];
    }
    if (b_step) {
      y = reinterpret_cast<const Pack<T, V>*>(b)[p];
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) y.v[j] = b[0];
    }
#pragma unroll
    for (int j = 0; j < V; ++j) z.v[j] = binary_forward<T>(op, x.v[j], y.v[j]);
    reinterpret_cast<Pack<T, V>*>(out)[p] = z;
  }
  // The last n % V elements.
  const int64_t i = packs * V + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = binary_forward<T>(op, a[i * a_step], b[i * b_step]);
}

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
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

template <typename S, typename D>
__global__ void cast_kernel(const S* src, D* dst, StridedLayout l, int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    offsets_of(l, i, 2, off);
    dst[off[1]] = convert<D>(src[off[0]]);
  }
}

// Calls f.template operator()<T>() for the element type with DType index `type`.
template <typename F>
void with_element_type(int type, F&& f) {
  switch (type) {
    case 0:
      return f.template operator()<float>();
    case 1:
      return f.template operator()<double>();
    case 2:
      return f.template operator()<bfloat16>();
    case 3:
      return f.template operator()<int32_t>();
    case 4:
      return f.template operator()<int64_t>();
    case 5:
      return f.template operator()<uint8_t>();
    default:
      throw std::runtime_error("CUDA cast: unknown element type " + std::to_string(type));
  }
}

template <typename E>
__global__ void fill_kernel(E* dst, E value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(blockDim.x) * gridDim.x)
    dst[i] = value;
}

}  // namespace

template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  if (n == 0) return;
  unary_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(op, p, x, y, n);
  check_last_launch("unary kernel");
}

template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n) {
  if (n == 0) return;
  unary_backward_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(op, p, g, x, y, dx, n);
  check_last_launch("unary backward kernel");
}

template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> out_strides = row_major_strides(shape);
  const StridedLayout l = make_layout(shape, {&a_strides, &b_strides, &out_strides});
  const int a_step = static_cast<int>(flat_step(l, 0)), b_step = static_cast<int>(flat_step(l, 1));
  if (a_step >= 0 && b_step >= 0 && (l.ndim == 0 || flat_step(l, 2) == 1)) {
    constexpr int V = 16 / sizeof(T);
    const bool vector = (!a_step || aligned16(a)) && (!b_step || aligned16(b)) && aligned16(out);
    if (vector && n >= V) {
      binary_flat_kernel<T, V>
          <<<blocks_for(n / V), kThreads, 0, stream()>>>(op, a, a_step, b, b_step, out, n);
    } else {
      binary_flat_kernel<T, 1>
          <<<blocks_for(n), kThreads, 0, stream()>>>(op, a, a_step, b, b_step, out, n);
    }
  } else {
    binary_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(op, a, b, out, l, n);
  }
  check_last_launch("binary kernel");
}

void copy_strided(const void* src, const std::vector<int64_t>& src_strides, void* dst,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape,
                  size_t elem_size) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const StridedLayout l = make_layout(shape, {&src_strides, &dst_strides});
  if (all_contiguous(l, 2)) {  // one run each: a plain device-to-device copy
    check_cuda(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * elem_size,
                               cudaMemcpyDeviceToDevice, stream()),
               "cudaMemcpyAsync (contiguous copy)");
    return;
  }
  switch (elem_size) {
    case 1:
      copy_kernel<uint8_t><<<blocks_for(n), kThreads, 0, stream()>>>(
          static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), l, n);
      break;
    case 2:
      copy_kernel<uint16_t><<<blocks_for(n), kThreads, 0, stream()>>>(
          static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), l, n);
      break;
    case 4:
      copy_kernel<uint32_t><<<blocks_for(n), kThreads, 0, stream()>>>(
          static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), l, n);
      break;
    case 8:
      copy_kernel<uint64_t><<<blocks_for(n), kThreads, 0, stream()>>>(
          static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), l, n);
      break;
    default:
      throw std::runtime_error("CUDA copy: unsupported element size " + std::to_string(elem_size));
  }
  check_last_launch("strided copy kernel");
}

void cast_strided(const void* src, int src_type, const std::vector<int64_t>& src_strides, void* dst,
                  int dst_type, const std::vector<int64_t>& dst_strides,
                  const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const StridedLayout l = make_layout(shape, {&src_strides, &dst_strides});
  with_element_type(src_type, [&]<typename S>() {
    with_element_type(dst_type, [&]<typename D>() {
      cast_kernel<S, D><<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<const S*>(src),
                                                                  static_cast<D*>(dst), l, n);
    });
  });
  check_last_launch("cast kernel");
}

void fill_bytes(void* dst, const void* value, size_t elem_size, int64_t n) {
  if (n == 0) return;
  switch (elem_size) {
    case 1: {
      uint8_t v;
      std::memcpy(&v, value, 1);
      fill_kernel<uint8_t>
          <<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<uint8_t*>(dst), v, n);
      break;
    }
    case 2: {
      uint16_t v;
      std::memcpy(&v, value, 2);
      fill_kernel<uint16_t>
          <<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<uint16_t*>(dst), v, n);
      break;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, value, 4);
      fill_kernel<uint32_t>
          <<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<uint32_t*>(dst), v, n);
      break;
    }
    case 8: {
      uint64_t v;
      std::memcpy(&v, value, 8);
      fill_kernel<uint64_t>
          <<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<uint64_t*>(dst), v, n);
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
