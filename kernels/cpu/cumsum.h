// CPU inclusive cumulative sum along the middle axis of a contiguous [outer, n, inner]
// buffer, so any dim scans without a transpose and the inner loop stays contiguous.
// Running sums are kept in double.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

// y[o, t, i] = sum_{s <= t} x[o, s, i]; with `reverse`, sum_{s >= t} (cumsum's backward).
template <typename T>
void cumsum(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool reverse);

}  // namespace im::kernels::cpu
