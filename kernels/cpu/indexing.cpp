#include "kernels/cpu/indexing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "kernels/cpu/strided_loop.h"

namespace im::kernels::cpu {

namespace {

std::vector<int64_t> contiguous_strides_of(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t acc = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

// The strided walk covers every coordinate except `dim`'s, which comes from the index.
std::vector<int64_t> without_dim(std::vector<int64_t> strides, int64_t dim) {
  strides[dim] = 0;
  return strides;
}

}  // namespace

template <typename I>
int64_t first_out_of_range(const I* idx, int64_t n, int64_t limit) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || static_cast<int64_t>(idx[i]) >= limit) return i;
  return -1;
}

template <typename T, typename I>
void embedding_forward(const T* table, const I* ids, T* out, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i)
    std::memcpy(out + i * dim, table + static_cast<int64_t>(ids[i]) * dim, dim * sizeof(T));
}

template <typename T, typename I>
void embedding_backward(const T* g, const I* ids, T* dtable, int64_t n, int64_t dim,
                        int64_t padding_idx) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    if (id == padding_idx) continue;
    const T* gr = g + i * dim;
    T* dr = dtable + id * dim;
    for (int64_t c = 0; c < dim; ++c) dr[c] += gr[c];
  }
}

template <typename T, typename I>
void gather(const T* x, const std::vector<int64_t>& x_strides, int64_t dim, const I* index, T* out,
            const std::vector<int64_t>& shape) {
  const std::vector<int64_t> xs = without_dim(x_strides, dim);
  const std::vector<int64_t> cs = contiguous_strides_of(shape);
  const int64_t step = x_strides[dim];
  for_each_strided<2>(
      shape, {xs.data(), cs.data()},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
        const T* px = x + off[0];
        const I* pi = index + off[1];
        T* po = out + off[1];
        for (int64_t i = 0; i < n; ++i) po[i] = px[i * st[0] + static_cast<int64_t>(pi[i]) * step];
      });
}

template <typename T, typename I>
void scatter_add(T* out, const std::vector<int64_t>& out_strides, int64_t dim, const I* index,
                 const T* src, const std::vector<int64_t>& src_strides,
                 const std::vector<int64_t>& shape) {
  const std::vector<int64_t> os = without_dim(out_strides, dim);
  const std::vector<int64_t> cs = contiguous_strides_of(shape);
  const int64_t step = out_strides[dim];
  for_each_strided<3>(
      shape, {os.data(), cs.data(), src_strides.data()},
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        T* po = out + off[0];
        const I* pi = index + off[1];
        const T* ps = src + off[2];
        for (int64_t i = 0; i < n; ++i)
          po[i * st[0] + static_cast<int64_t>(pi[i]) * step] += ps[i * st[2]];
      });
}

template <typename T>
void where(const uint8_t* cond, const std::vector<int64_t>& cond_strides, const T* a,
           const std::vector<int64_t>& a_strides, const T* b, const std::vector<int64_t>& b_strides,
           T* out, const std::vector<int64_t>& shape) {
  const std::vector<int64_t> os = contiguous_strides_of(shape);
  for_each_strided<4>(
      shape, {cond_strides.data(), a_strides.data(), b_strides.data(), os.data()},
      [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
        const uint8_t* pc = cond + off[0];
        const T* pa = a + off[1];
        const T* pb = b + off[2];
        T* po = out + off[3];
        for (int64_t i = 0; i < n; ++i) po[i] = pc[i * st[0]] ? pa[i * st[1]] : pb[i * st[2]];
      });
}

template <typename T>
void masked_fill(const T* x, const std::vector<int64_t>& x_strides, const uint8_t* mask,
                 const std::vector<int64_t>& mask_strides, T value, T* out,
                 const std::vector<int64_t>& shape) {
  const std::vector<int64_t> os = contiguous_strides_of(shape);
  for_each_strided<3>(
      shape, {x_strides.data(), mask_strides.data(), os.data()},
      [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
        const T* px = x + off[0];
        const uint8_t* pm = mask + off[1];
        T* po = out + off[2];
        for (int64_t i = 0; i < n; ++i) po[i] = pm[i * st[1]] ? value : px[i * st[0]];
      });
}

template <typename T>
void topk_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t cols, int64_t k) {
  if (k == 0) return;
  std::vector<int64_t> order(cols);  // reused across rows
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    std::iota(order.begin(), order.end(), int64_t{0});
    // A strict total order (value, then column), so the result is deterministic.
    auto before = [xr](int64_t i, int64_t j) {
      const bool ni = std::isnan(xr[i]), nj = std::isnan(xr[j]);
      if (ni != nj) return ni;
      if (!ni && xr[i] != xr[j]) return xr[i] > xr[j];
      return i < j;
    };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
    for (int64_t j = 0; j < k; ++j) {
      values[r * k + j] = xr[order[j]];
      indices[r * k + j] = order[j];
    }
  }
}

#define IM_INDEXING_INSTANTIATE_T_I(T, I)                                                       \
  template void embedding_forward<T, I>(const T*, const I*, T*, int64_t, int64_t);              \
  template void embedding_backward<T, I>(const T*, const I*, T*, int64_t, int64_t, int64_t);    \
  template void gather<T, I>(const T*, const std::vector<int64_t>&, int64_t, const I*, T*,      \
                             const std::vector<int64_t>&);                                      \
  template void scatter_add<T, I>(T*, const std::vector<int64_t>&, int64_t, const I*, const T*, \
                                  const std::vector<int64_t>&, const std::vector<int64_t>&);

#define IM_INDEXING_INSTANTIATE_T(T)                                                             \
  IM_INDEXING_INSTANTIATE_T_I(T, int32_t)                                                        \
  IM_INDEXING_INSTANTIATE_T_I(T, int64_t)                                                        \
  template void where<T>(const uint8_t*, const std::vector<int64_t>&, const T*,                  \
                         const std::vector<int64_t>&, const T*, const std::vector<int64_t>&, T*, \
                         const std::vector<int64_t>&);                                           \
  template void masked_fill<T>(const T*, const std::vector<int64_t>&, const uint8_t*,            \
                               const std::vector<int64_t>&, T, T*, const std::vector<int64_t>&); \
  template void topk_rows<T>(const T*, T*, int64_t*, int64_t, int64_t, int64_t);

IM_INDEXING_INSTANTIATE_T(float)
IM_INDEXING_INSTANTIATE_T(double)
template int64_t first_out_of_range<int32_t>(const int32_t*, int64_t, int64_t);
template int64_t first_out_of_range<int64_t>(const int64_t*, int64_t, int64_t);

#undef IM_INDEXING_INSTANTIATE_T
#undef IM_INDEXING_INSTANTIATE_T_I

}  // namespace im::kernels::cpu
