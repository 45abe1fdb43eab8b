// CUDA inclusive cumulative sum along the middle axis of a contiguous [outer, n, inner]
// buffer; the semantics of kernels/cpu/cumsum.h (running sums in double; for bfloat16,
// GPU only, in float, each output rounded to bfloat16 once).
// With inner 1 (a scan along the last axis) a warp scans 32 elements at a time (a shuffle
// scan plus a carry), reading coalesced; otherwise one thread runs down each (outer,
// inner) column, neighbouring threads reading neighbouring elements. When that leaves too
// little parallelism (few rows, or few columns) the scanned axis is cut into chunks: a
// first pass sums each chunk, the chunk totals are scanned in order, and a second pass
// scans each chunk from its offset. Results are deterministic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace im::kernels::cuda {

// Device scratch (bytes) cumsum needs for [outer, n, inner]; 0 when none.
size_t cumsum_workspace_bytes(int64_t outer, int64_t n, int64_t inner);

// y[o, t, i] = sum_{s <= t} x[o, s, i]; with `reverse`, sum_{s >= t} (cumsum's backward).
template <typename T>
void cumsum(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool reverse,
            void* workspace);

}  // namespace im::kernels::cuda
