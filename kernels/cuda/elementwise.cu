#include <cuda_runtime.h>

#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "kernels/bfloat16.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/strided_layout.cuh"

namespace im::kernels::cuda {

namespace {

// V elements of T loaded or stored as one access: 16 bytes for float ×4, double ×2 and
// bfloat16 ×8 (the kernels' V > 1 paths need every pointer they pack 16-byte aligned).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p, int64_t pack) {
  return reinterpret_cast<const Pack<T, V>*>(p)[pack];
}

template <int V, typename T>
__device__ __forceinline__ void store_pack(T* p, int64_t pack, const Pack<T, V>& v) {
  reinterpret_cast<Pack<T, V>*>(p)[pack] = v;
}

// Element i of the last n % V, one per thread after the packs (-1 for threads past the end).
template <int V>
__device__ __forceinline__ int64_t tail_index(int64_t n) {
  const int64_t i = n / V * V + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  return i < n ? i : -1;
}

// Every element kernel below computes in C = compute_t<T>: loads widen to C, the result is
// rounded to T once on store (identity conversions for float and double).

template <typename T>
__device__ __forceinline__ T unary_at(UnaryOp op, UnaryParams p, T x) {
  using C = compute_t<T>;
  return convert<T>(unary_forward<C>(op, p, convert<C>(x)));
}

// y = f(x) over n contiguous elements, V at a time.
template <typename T, int V>
__global__ void unary_kernel(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  IM_GRID_STRIDE_LOOP(k, n / V) {
    const Pack<T, V> in = load_pack<V>(x, k);
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = unary_at(op, p, in.v[j]);
    store_pack<V>(y, k, out);
  }
  const int64_t i = tail_index<V>(n);
  if (i >= 0) y[i] = unary_at(op, p, x[i]);
}

// With no stored output (has_y false), a derivative that reads y recomputes it from x.
template <typename T>
__device__ __forceinline__ T unary_backward_at(UnaryOp op, UnaryParams p, T g, T x, T y,
                                               bool has_y) {
  using C = compute_t<T>;
  const C xc = convert<C>(x);
  const C yc = has_y || !backward_reads_output(op) ? convert<C>(y) : unary_forward<C>(op, p, xc);
  return convert<T>(kernels::unary_backward<C>(op, p, convert<C>(g), xc, yc));
}

// dx = g * f'(x) over n contiguous elements, V at a time. y (the forward output) may be
// null: it then reads as zeros, and ops whose derivative needs it recompute it.
template <typename T, int V>
__global__ void unary_backward_kernel(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y,
                                      T* dx, int64_t n) {
  IM_GRID_STRIDE_LOOP(k, n / V) {
    const Pack<T, V> gp = load_pack<V>(g, k), xp = load_pack<V>(x, k);
    const Pack<T, V> yp = y ? load_pack<V>(y, k) : Pack<T, V>{};  // value-initialised: zeros
    Pack<T, V> out;
#pragma unroll
    for (int j = 0; j < V; ++j)
      out.v[j] = unary_backward_at(op, p, gp.v[j], xp.v[j], yp.v[j], y != nullptr);
    store_pack<V>(dx, k, out);
  }
  const int64_t i = tail_index<V>(n);
  if (i >= 0) dx[i] = unary_backward_at(op, p, g[i], x[i], y ? y[i] : T{}, y != nullptr);
}

// b is an array read through the layout's operand 1, or (b null) the number b_value, kept
// in the compute type so a scalar operand of a bfloat16 tensor is not rounded to bfloat16.
template <typename T>
__global__ void binary_kernel(BinaryOp op, const T* a, const T* b, compute_t<T> b_value, T* out,
                              StridedLayout l, int64_t n) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    offsets_of(l, i, 3, off);
    const C bv = b ? convert<C>(b[off[1]]) : b_value;
    out[off[2]] = convert<T>(binary_forward<C>(op, convert<C>(a[off[0]]), bv));
  }
}

// The common case after coalescing: out contiguous, each input contiguous (step 1) or a
// single broadcast element (step 0, read once per thread; b null: the number b_value).
// V > 1 needs every step-1 pointer 16-byte aligned.
template <typename T, int V>
__global__ void binary_flat_kernel(BinaryOp op, const T* a, int a_step, const T* b, int b_step,
                                   compute_t<T> b_value, T* out, int64_t n) {
  using C = compute_t<T>;
  const C a0 = a_step ? C(0) : convert<C>(a[0]);
  const C b0 = b_step ? C(0) : (b ? convert<C>(b[0]) : b_value);
  IM_GRID_STRIDE_LOOP(k, n / V) {
    Pack<T, V> x{}, y{}, z;
    if (a_step) x = load_pack<V>(a, k);
    if (b_step) y = load_pack<V>(b, k);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C av = a_step ? convert<C>(x.v[j]) : a0, bv = b_step ? convert<C>(y.v[j]) : b0;
      z.v[j] = convert<T>(binary_forward<C>(op, av, bv));
    }
    store_pack<V>(out, k, z);
  }
  const int64_t i = tail_index<V>(n);
  if (i >= 0) {
    const C av = a_step ? convert<C>(a[i]) : a0, bv = b_step ? convert<C>(b[i]) : b0;
    out[i] = convert<T>(binary_forward<C>(op, av, bv));
  }
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

__global__ void accumulate_widening_kernel(float* dst, const bfloat16* src, StridedLayout l,
                                           int64_t n) {
  IM_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    offsets_of(l, i, 2, off);
    dst[off[1]] += src[off[0]].to_float();
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

// 16-byte packs when every pointer allows them (buffers from the allocator do; views that
// start mid-pack do not) and there is at least one pack.
template <typename T, typename F>
void with_pack_width(int64_t n, std::initializer_list<const void*> pointers, F&& f) {
  constexpr int V = 16 / sizeof(T);
  bool vector = n >= V;
  for (const void* p : pointers) vector = vector && (!p || aligned16(p));
  if (vector) {
    f.template operator()<V>();
  } else {
    f.template operator()<1>();
  }
}

// out = a op b with b an array (b_strides) or, b null, the number b_value.
template <typename T>
void launch_binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
                   const std::vector<int64_t>& b_strides, compute_t<T> b_value, T* out,
                   const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> out_strides = row_major_strides(shape);
  const StridedLayout l = make_layout(shape, {&a_strides, &b_strides, &out_strides});
  const int a_step = static_cast<int>(flat_step(l, 0)), b_step = static_cast<int>(flat_step(l, 1));
  if (a_step >= 0 && b_step >= 0 && (l.ndim == 0 || flat_step(l, 2) == 1)) {
    with_pack_width<T>(n, {a_step ? a : nullptr, b_step ? b : nullptr, out}, [&]<int V>() {
      binary_flat_kernel<T, V>
          <<<blocks_for(n / V), kThreads, 0, stream()>>>(op, a, a_step, b, b_step, b_value, out, n);
    });
  } else {
    binary_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(op, a, b, b_value, out, l, n);
  }
  check_last_launch("binary kernel");
}

}  // namespace

template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  if (n == 0) return;
  with_pack_width<T>(n, {x, y}, [&]<int V>() {
    unary_kernel<T, V><<<blocks_for(n / V), kThreads, 0, stream()>>>(op, p, x, y, n);
  });
  check_last_launch("unary kernel");
}

template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n) {
  if (n == 0) return;
  with_pack_width<T>(n, {g, x, y, dx}, [&]<int V>() {
    unary_backward_kernel<T, V>
        <<<blocks_for(n / V), kThreads, 0, stream()>>>(op, p, g, x, y, dx, n);
  });
  check_last_launch("unary backward kernel");
}

template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape) {
  launch_binary<T>(op, a, a_strides, b, b_strides, compute_t<T>(0), out, shape);
}

template <typename T>
void binary_scalar(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, double s, T* out,
                   const std::vector<int64_t>& shape) {
  const std::vector<int64_t> no_strides(shape.size(), 0);
  launch_binary<T>(op, a, a_strides, nullptr, no_strides, static_cast<compute_t<T>>(s), out, shape);
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

void accumulate_widening(float* dst, const bfloat16* src, const std::vector<int64_t>& src_strides,
                         const std::vector<int64_t>& shape) {
  const int64_t n = numel_of(shape);
  if (n == 0) return;
  const std::vector<int64_t> dst_strides = row_major_strides(shape);
  const StridedLayout l = make_layout(shape, {&src_strides, &dst_strides});
  accumulate_widening_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst, src, l, n);
  check_last_launch("widening accumulate kernel");
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

#define IM_CUDA_INSTANTIATE(T)                                                                \
  template void unary<T>(UnaryOp, UnaryParams, const T*, T*, int64_t);                        \
  template void unary_backward<T>(UnaryOp, UnaryParams, const T*, const T*, const T*, T*,     \
                                  int64_t);                                                   \
  template void binary<T>(BinaryOp, const T*, const std::vector<int64_t>&, const T*,          \
                          const std::vector<int64_t>&, T*, const std::vector<int64_t>&);      \
  template void binary_scalar<T>(BinaryOp, const T*, const std::vector<int64_t>&, double, T*, \
                                 const std::vector<int64_t>&);
IM_CUDA_INSTANTIATE(float)
IM_CUDA_INSTANTIATE(double)
IM_CUDA_INSTANTIATE(bfloat16)
#undef IM_CUDA_INSTANTIATE

}  // namespace im::kernels::cuda
