#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <array>

#include "kernels/bfloat16.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided_loop.h"

namespace im::kernels::cpu {

namespace {

// Runs a strided N-operand loop in parallel by splitting the outermost dimension:
// operand k's chunk starts at offset begin * strides[k][0].
template <size_t N, typename Inner>
void parallel_strided(const std::vector<int64_t>& shape,
                      const std::array<const int64_t*, N>& strides, Inner&& inner) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  if (shape.size() < 2 || numel < kParallelGrain || shape[0] < 2) {
    for_each_strided<N>(shape, strides, inner);
    return;
  }
  const int64_t rows = shape[0], per_row = numel / rows;
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / per_row), [&](int64_t b, int64_t e) {
    std::vector<int64_t> sub = shape;
    sub[0] = e - b;
    for_each_strided<N>(sub, strides, [&](std::array<int64_t, N> off, int64_t n,
                                          const std::array<int64_t, N>& st) {
      for (size_t k = 0; k < N; ++k) off[k] += b * strides[k][0];
      inner(off, n, st);
    });
  });
}

}  // namespace

template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n) {
  parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = unary_forward<T>(op, p, x[i]);
  });
}

template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n) {
  parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      dx[i] = kernels::unary_backward<T>(op, p, g[i], x[i], y ? y[i] : T(0));
  });
}

template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape) {
  std::vector<int64_t> out_strides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    out_strides[d] = s;
    s *= shape[d];
  }
  parallel_strided<3>(
      shape, {a_strides.data(), b_strides.data(), out_strides.data()},
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        const T* pa = a + off[0];
        const T* pb = b + off[1];
        T* po = out + off[2];
        if (st[0] == 1 && st[1] == 1) {  // the common contiguous case, vectorisable
          for (int64_t i = 0; i < n; ++i) po[i] = binary_forward<T>(op, pa[i], pb[i]);
        } else {
          for (int64_t i = 0; i < n; ++i)
            po[i] = binary_forward<T>(op, pa[i * st[0]], pb[i * st[1]]);
        }
      });
}

template <typename Src, typename Dst>
void copy_strided(const Src* src, const std::vector<int64_t>& src_strides, Dst* dst,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape) {
  parallel_strided<2>(
      shape, {src_strides.data(), dst_strides.data()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        const Src* ps = src + off[0];
        Dst* pd = dst + off[1];
        for (int64_t i = 0; i < n; ++i) pd[i * st[1]] = convert<Dst>(ps[i * st[0]]);
      });
}

template <typename T>
void accumulate(T* out, const T* x, const std::vector<int64_t>& x_strides,
                const std::vector<int64_t>& shape) {
  std::vector<int64_t> out_strides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    out_strides[d] = s;
    s *= shape[d];
  }
  parallel_strided<2>(
      shape, {x_strides.data(), out_strides.data()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        const T* px = x + off[0];
        T* po = out + off[1];
        for (int64_t i = 0; i < n; ++i) po[i] += px[i * st[0]];
      });
}

template <typename T>
void fill(T* out, T value, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = value;
}

#define IM_INSTANTIATE_FLOAT(T)                                                           \
  template void unary<T>(UnaryOp, UnaryParams, const T*, T*, int64_t);                    \
  template void unary_backward<T>(UnaryOp, UnaryParams, const T*, const T*, const T*, T*, \
                                  int64_t);                                               \
  template void binary<T>(BinaryOp, const T*, const std::vector<int64_t>&, const T*,      \
                          const std::vector<int64_t>&, T*, const std::vector<int64_t>&);  \
  template void accumulate<T>(T*, const T*, const std::vector<int64_t>&,                  \
                              const std::vector<int64_t>&);
IM_INSTANTIATE_FLOAT(float)
IM_INSTANTIATE_FLOAT(double)

template void fill<float>(float*, float, int64_t);
template void fill<double>(double*, double, int64_t);
template void fill<bfloat16>(bfloat16*, bfloat16, int64_t);
template void fill<int32_t>(int32_t*, int32_t, int64_t);
template void fill<int64_t>(int64_t*, int64_t, int64_t);
template void fill<uint8_t>(uint8_t*, uint8_t, int64_t);

#define IM_COPY_FROM(S)                                                                            \
  template void copy_strided<S, float>(const S*, const std::vector<int64_t>&, float*,              \
                                       const std::vector<int64_t>&, const std::vector<int64_t>&);  \
  template void copy_strided<S, double>(const S*, const std::vector<int64_t>&, double*,            \
                                        const std::vector<int64_t>&, const std::vector<int64_t>&); \
  template void copy_strided<S, bfloat16>(const S*, const std::vector<int64_t>&, bfloat16*,        \
                                          const std::vector<int64_t>&,                             \
                                          const std::vector<int64_t>&);                            \
  template void copy_strided<S, int32_t>(const S*, const std::vector<int64_t>&, int32_t*,          \
                                         const std::vector<int64_t>&,                              \
                                         const std::vector<int64_t>&);                             \
  template void copy_strided<S, int64_t>(const S*, const std::vector<int64_t>&, int64_t*,          \
                                         const std::vector<int64_t>&,                              \
                                         const std::vector<int64_t>&);                             \
  template void copy_strided<S, uint8_t>(const S*, const std::vector<int64_t>&, uint8_t*,          \
                                         const std::vector<int64_t>&,                              \
                                         const std::vector<int64_t>&);
IM_COPY_FROM(float)
IM_COPY_FROM(double)
IM_COPY_FROM(bfloat16)
IM_COPY_FROM(int32_t)
IM_COPY_FROM(int64_t)
IM_COPY_FROM(uint8_t)

}  // namespace im::kernels::cpu
