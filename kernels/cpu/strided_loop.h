// Walks an N-d index space over several operands with their own element strides,
// handing the innermost dimension to a callback as one strided run. This is the
// CPU reference kernels' only way to touch non-contiguous or broadcast (stride 0) data.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace im::kernels::cpu {

template <size_t N, typename Inner>
void for_each_strided(const std::vector<int64_t>& shape,
                      const std::array<const int64_t*, N>& strides, Inner&& inner) {
  const int ndim = static_cast<int>(shape.size());
  for (int64_t s : shape)
    if (s == 0) return;
  std::array<int64_t, N> offsets{};
  if (ndim == 0) {
    std::array<int64_t, N> unit{};
    inner(offsets, int64_t{1}, unit);
    return;
  }
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = strides[k][ndim - 1];
  const int64_t inner_n = shape[ndim - 1];
  std::vector<int64_t> index(ndim, 0);
  while (true) {
    inner(offsets, inner_n, inner_strides);
    // Advance the outer index like an odometer.
    int d = ndim - 2;
    for (; d >= 0; --d) {
      ++index[d];
      for (size_t k = 0; k < N; ++k) offsets[k] += strides[k][d];
      if (index[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) offsets[k] -= strides[k][d] * shape[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace im::kernels::cpu
