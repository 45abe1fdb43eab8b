#include <cuda_runtime.h>

#include <cstdint>
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

// The pack whose first element is at element offset `off` (which packs_fit keeps aligned).
template <int V, typename T>
__device__ __forceinline__ Pack<T, V> load_pack_at(const T* p, int64_t off) {
  return *reinterpret_cast<const Pack<T, V>*>(p + off);
}

template <int V, typename T>
__device__ __forceinline__ void store_pack_at(T* p, int64_t off, const Pack<T, V>& v) {
  *reinterpret_cast<Pack<T, V>*>(p + off) = v;
}

// V copies of one value: an operand that is constant along a pack (stride 0).
template <int V, typename T>
__device__ __forceinline__ Pack<T, V> splat(T value) {
  Pack<T, V> p;
#pragma unroll
  for (int j = 0; j < V; ++j) p.v[j] = value;
  return p;
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

// The strided case whose innermost dim holds whole packs (packs_fit): each iteration
// computes pack p of the contiguous output with the index math done once. a and b are each
// a run along the innermost dim (a_run, b_run) or constant along it (a column broadcast;
// b null: the number b_value), read once per pack. Same per-element math as binary_kernel.
template <typename T, int V>
__global__ void binary_packed_kernel(BinaryOp op, const T* a, bool a_run, const T* b, bool b_run,
                                     compute_t<T> b_value, T* out, StridedLayout l, int64_t packs) {
  using C = compute_t<T>;
  IM_GRID_STRIDE_LOOP(p, packs) {
    int64_t off[2];
    offsets_of(l, p, 2, off);
    Pack<T, V> x{}, y{}, z;
    C a0 = C(0), b0 = b_value;
    if (a_run) {
      x = load_pack_at<V>(a, off[0]);
    } else {
      a0 = convert<C>(a[off[0]]);
    }
    if (b_run) {
      y = load_pack_at<V>(b, off[1]);
    } else if (b) {
      b0 = convert<C>(b[off[1]]);
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const C av = a_run ? convert<C>(x.v[j]) : a0, bv = b_run ? convert<C>(y.v[j]) : b0;
      z.v[j] = convert<T>(binary_forward<C>(op, av, bv));
    }
    store_pack<V>(out, p, z);
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

// Packed strided copy (packs_fit): pack p of the linear order, src a run along the
// innermost dim (src_run) or one value repeated along it (an expanded source).
template <typename E, int V>
__global__ void copy_packed_kernel(const E* src, bool src_run, E* dst, StridedLayout l,
                                   int64_t packs) {
  IM_GRID_STRIDE_LOOP(p, packs) {
    int64_t off[2];
    offsets_of(l, p, 2, off);
    store_pack_at<V>(dst, off[1], src_run ? load_pack_at<V>(src, off[0]) : splat<V>(src[off[0]]));
  }
}

template <typename S, typename D, int V>
__device__ __forceinline__ Pack<D, V> convert_pack(const Pack<S, V>& in) {
  Pack<D, V> out;
#pragma unroll
  for (int j = 0; j < V; ++j) out.v[j] = convert<D>(in.v[j]);
  return out;
}

// Both sides contiguous (the common cast): V at a time, then the n % V tail.
template <typename S, typename D, int V>
__global__ void cast_flat_kernel(const S* src, D* dst, int64_t n) {
  IM_GRID_STRIDE_LOOP(k, n / V) store_pack<V>(dst, k, convert_pack<S, D, V>(load_pack<V>(src, k)));
  const int64_t i = tail_index<V>(n);
  if (i >= 0) dst[i] = convert<D>(src[i]);
}

// Packed strided cast (packs_fit), as copy_packed_kernel.
template <typename S, typename D, int V>
__global__ void cast_packed_kernel(const S* src, bool src_run, D* dst, StridedLayout l,
                                   int64_t packs) {
  IM_GRID_STRIDE_LOOP(p, packs) {
    int64_t off[2];
    offsets_of(l, p, 2, off);
    const Pack<S, V> in = src_run ? load_pack_at<V>(src, off[0]) : splat<V>(src[off[0]]);
    store_pack_at<V>(dst, off[1], convert_pack<S, D, V>(in));
  }
}

// Packed widening accumulate (packs_fit): dst is contiguous, so pack p sits at element
// p × V; src a run along the innermost dim or one value per pack (a column broadcast).
template <int V>
__global__ void accumulate_widening_packed_kernel(float* dst, const bfloat16* src, bool src_run,
                                                  StridedLayout l, int64_t packs) {
  IM_GRID_STRIDE_LOOP(p, packs) {
    int64_t off[1];
    offsets_of(l, p, 1, off);
    Pack<float, V> d = load_pack<V>(dst, p);
    if (src_run) {
      const Pack<bfloat16, V> x = load_pack_at<V>(src, off[0]);
#pragma unroll
      for (int j = 0; j < V; ++j) d.v[j] += x.v[j].to_float();
    } else {
      const float x = src[off[0]].to_float();
#pragma unroll
      for (int j = 0; j < V; ++j) d.v[j] += x;
    }
    store_pack<V>(dst, p, d);
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

// dst[0, n) = value with 16-byte stores: the `head` elements before the first 16-byte
// boundary and the tail after the last whole pack go one element per thread.
template <typename E>
__global__ void fill_kernel(E* dst, E value, int64_t head, int64_t n) {
  constexpr int V = 16 / sizeof(E);
  const int64_t packs = (n - head) / V;
  const Pack<E, V> pv = splat<V>(value);
  IM_GRID_STRIDE_LOOP(k, packs) store_pack<V>(dst + head, k, pv);
  // Head and tail hold fewer than 2V <= 32 elements: one each for the first threads.
  const int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (t < n - packs * V) dst[t < head ? t : t + packs * V] = value;
}

// Calls f.template operator()<E>() for the unsigned integer type of `elem_size` bytes:
// copies and fills move bits, whatever the element type.
template <typename F>
void with_bits_type(size_t elem_size, const char* what, F&& f) {
  switch (elem_size) {
    case 1:
      return f.template operator()<uint8_t>();
    case 2:
      return f.template operator()<uint16_t>();
    case 4:
      return f.template operator()<uint32_t>();
    case 8:
      return f.template operator()<uint64_t>();
    default:
      throw std::runtime_error(std::string("CUDA ") + what + ": unsupported element size " +
                               std::to_string(elem_size));
  }
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
  } else if (constexpr int V = 16 / sizeof(T);
             packs_fit(l, V, {{a, sizeof(T)}, {b, sizeof(T)}, {out, sizeof(T), true}})) {
    const StridedLayout pl = packed_layout(l, 3, V);
    const int inner = pl.ndim - 1;
    const bool a_run = pl.strides[0][inner] != 0, b_run = b && pl.strides[1][inner] != 0;
    binary_packed_kernel<T, V><<<blocks_for(n / V), kThreads, 0, stream()>>>(
        op, a, a_run, b, b_run, b_value, out, pl, n / V);
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
  with_bits_type(elem_size, "copy", [&]<typename E>() {
    constexpr int V = 16 / sizeof(E);
    const E* s = static_cast<const E*>(src);
    E* d = static_cast<E*>(dst);
    if (packs_fit(l, V, {{s, sizeof(E)}, {d, sizeof(E), true}})) {
      const StridedLayout pl = packed_layout(l, 2, V);
      const bool src_run = pl.strides[0][pl.ndim - 1] != 0;
      copy_packed_kernel<E, V>
          <<<blocks_for(n / V), kThreads, 0, stream()>>>(s, src_run, d, pl, n / V);
    } else {
      copy_kernel<E><<<blocks_for(n), kThreads, 0, stream()>>>(s, d, l, n);
    }
  });
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
      // Packs of 16 bytes of the wider type (the narrower side moves 4 or 8 bytes a pack).
      constexpr int V = 16 / (sizeof(S) > sizeof(D) ? sizeof(S) : sizeof(D));
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      const auto fits = [&](const void* p, size_t size) {
        return reinterpret_cast<uintptr_t>(p) % (size * V) == 0;
      };
      if (all_contiguous(l, 2) && fits(s, sizeof(S)) && fits(d, sizeof(D))) {
        cast_flat_kernel<S, D, V><<<blocks_for(n / V), kThreads, 0, stream()>>>(s, d, n);
      } else if (packs_fit(l, V, {{s, sizeof(S)}, {d, sizeof(D), true}})) {
        const StridedLayout pl = packed_layout(l, 2, V);
        const bool src_run = pl.strides[0][pl.ndim - 1] != 0;
        cast_packed_kernel<S, D, V>
            <<<blocks_for(n / V), kThreads, 0, stream()>>>(s, src_run, d, pl, n / V);
      } else {
        cast_kernel<S, D><<<blocks_for(n), kThreads, 0, stream()>>>(s, d, l, n);
      }
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
  constexpr int V = 4;  // 16 bytes of float32
  if (packs_fit(l, V, {{src, sizeof(bfloat16)}, {dst, sizeof(float), true}})) {
    const StridedLayout pl = packed_layout(l, 2, V);
    const bool src_run = pl.strides[0][pl.ndim - 1] != 0;
    accumulate_widening_packed_kernel<V>
        <<<blocks_for(n / V), kThreads, 0, stream()>>>(dst, src, src_run, pl, n / V);
  } else {
    accumulate_widening_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst, src, l, n);
  }
  check_last_launch("widening accumulate kernel");
}

void fill_bytes(void* dst, const void* value, size_t elem_size, int64_t n) {
  if (n == 0) return;
  const auto* bytes = static_cast<const unsigned char*>(value);
  bool zero = true;
  for (size_t k = 0; k < elem_size; ++k) zero = zero && bytes[k] == 0;
  if (zero) {  // most fills (gradient buffers, padding): the driver's memset
    check_cuda(cudaMemsetAsync(dst, 0, static_cast<size_t>(n) * elem_size, stream()),
               "cudaMemsetAsync (zero fill)");
    return;
  }
  with_bits_type(elem_size, "fill", [&]<typename E>() {
    E v;
    std::memcpy(&v, value, sizeof(E));
    // Elements before the first 16-byte boundary (dst is at least element-aligned).
    const int64_t to_boundary =
        static_cast<int64_t>((16 - reinterpret_cast<uintptr_t>(dst) % 16) % 16 / sizeof(E));
    const int64_t head = to_boundary < n ? to_boundary : n;
    fill_kernel<E><<<blocks_for((n - head) / (16 / sizeof(E))), kThreads, 0, stream()>>>(
        static_cast<E*>(dst), v, head, n);
  });
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
