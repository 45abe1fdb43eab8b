// Shape and up to four operands' strides passed to a kernel by value, so each thread maps
// a linear index of the shape to an element offset in every operand (broadcast dims have
// stride 0). Shared by the strided elementwise, copy and selection kernels.
//
// make_layout coalesces first: size-1 dims go, and neighbouring dims that every operand
// walks as one (outer stride = inner stride × inner size) merge, so a contiguous tensor
// becomes one dim and a row broadcast two. The linear index order is unchanged, so
// kernels that also index a contiguous operand by `i` stay right. When every offset fits
// in 31 bits the index math is 32-bit with multiply-shift division (FastDivider): 64-bit
// division per dim per element made these kernels compute-bound (the binary kernel took
// 37% of a training step's GPU time on an H100 before). packed_layout walks the same
// order V elements at a time when the innermost dim allows vector accesses (packs_fit),
// so the index math runs once per pack.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace im::kernels::cuda {

constexpr int kMaxDims = 8;
constexpr int kMaxOperands = 4;

// n / divisor for n, divisor < 2^31 by a multiply-high and a shift (Granlund-Montgomery,
// as PyTorch's IntDivider): magic = ⌊2^32 (2^shift − d) / d⌋ + 1 with 2^shift ≥ d.
struct FastDivider {
  uint32_t divisor = 1, magic = 1, shift = 0;

  static FastDivider of(uint32_t d) {
    FastDivider f;
    f.divisor = d;
    while (f.shift < 32 && (uint64_t{1} << f.shift) < d) ++f.shift;
    f.magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << f.shift) - d)) / d + 1);
    return f;
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const {
    return (__umulhi(n, magic) + n) >> shift;
  }
};

struct StridedLayout {
  int ndim = 0;     // after coalescing; 0: a single element
  bool narrow = 0;  // every linear index and offset fits in 31 bits: 32-bit index math
  int64_t shape[kMaxDims] = {};
  FastDivider divider[kMaxDims] = {};
  int64_t strides[kMaxOperands][kMaxDims] = {};
};

inline int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// Picks 32-bit index math when every linear index and operand offset fits in 31 bits, and
// the dividers it needs.
inline void set_index_math(StridedLayout& l, int ops) {
  int64_t n = 1;
  for (int d = 0; d < l.ndim; ++d) n *= l.shape[d];
  bool narrow = n < (int64_t{1} << 31);
  for (int k = 0; k < ops; ++k) {
    int64_t reach = 0;  // the largest |offset| operand k reaches
    for (int d = 0; d < l.ndim; ++d) reach += std::llabs(l.strides[k][d]) * (l.shape[d] - 1);
    narrow = narrow && reach < (int64_t{1} << 31);
  }
  l.narrow = narrow;
  for (int d = 0; d < l.ndim; ++d)
    l.divider[d] = FastDivider::of(narrow ? static_cast<uint32_t>(l.shape[d]) : 1u);
}

inline StridedLayout make_layout(const std::vector<int64_t>& shape,
                                 std::initializer_list<const std::vector<int64_t>*> strides) {
  if (shape.size() > static_cast<size_t>(kMaxDims))
    throw std::runtime_error("CUDA strided kernel: " + std::to_string(shape.size()) +
                             " dimensions, at most 8 supported");
  if (strides.size() > static_cast<size_t>(kMaxOperands))
    throw std::runtime_error("CUDA strided kernel: at most 4 operands");
  const int ops = static_cast<int>(strides.size());
  StridedLayout l;
  // Outer to inner: skip size-1 dims, merge a dim into the one before it where all agree.
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merges = l.ndim > 0;
    int k = 0;
    for (const auto* s : strides) {
      if (merges && l.strides[k][l.ndim - 1] != (*s)[d] * shape[d]) merges = false;
      ++k;
    }
    const int at = merges ? l.ndim - 1 : l.ndim++;
    l.shape[at] = merges ? l.shape[at] * shape[d] : shape[d];
    k = 0;
    for (const auto* s : strides) l.strides[k++][at] = (*s)[d];
  }
  set_index_math(l, ops);
  return l;
}

// Operand k's step through a layout that coalesced to at most one dim: 1 for a contiguous
// run, 0 for one broadcast element (and for a single-element layout); -1 for anything else.
inline int64_t flat_step(const StridedLayout& l, int k) {
  if (l.ndim == 0) return 0;
  if (l.ndim > 1) return -1;
  const int64_t s = l.strides[k][0];
  return s == 0 || s == 1 ? s : -1;
}

// True when, after coalescing, every operand is one contiguous run (or a single element).
inline bool all_contiguous(const StridedLayout& l, int count) {
  if (l.ndim == 0) return true;
  for (int k = 0; k < count; ++k)
    if (flat_step(l, k) != 1) return false;
  return true;
}

// One operand of a packed launch (see packs_fit): its base pointer, element size, and
// whether it is written (an output must walk the innermost dim, never broadcast along it).
struct PackOperand {
  const void* ptr;
  size_t elem_size;
  bool output = false;
};

// True when the layout can be walked V elements at a time along its innermost dim, one
// pack per thread-iteration with 16-byte (or narrower) vector accesses: the innermost dim
// holds whole packs, every operand walks it contiguously (stride 1) or, inputs only, not
// at all (stride 0: one value per pack), and for each stride-1 operand the base pointer
// and every outer stride keep its packs (V × its element size) aligned. Operands are
// given in layout order; a null pointer must be a stride-0 operand (a number).
inline bool packs_fit(const StridedLayout& l, int V, std::initializer_list<PackOperand> ops) {
  if (l.ndim == 0 || V <= 1 || l.shape[l.ndim - 1] % V != 0) return false;
  const int inner = l.ndim - 1;
  int k = 0;
  for (const PackOperand& o : ops) {
    const int64_t s = l.strides[k][inner];
    if (s == 0 && !o.output) {
      ++k;
      continue;
    }
    if (s != 1 || !o.ptr) return false;
    if (reinterpret_cast<uintptr_t>(o.ptr) % (o.elem_size * V) != 0) return false;
    for (int d = 0; d < inner; ++d)
      if (l.strides[k][d] % V != 0) return false;
    ++k;
  }
  return true;
}

// The layout of packs of V elements (packs_fit true): linear index p is the pack that
// starts at element p × V, and offsets_of gives each operand's offset, in elements, of
// the pack's first element (the innermost stride becomes V or stays 0).
inline StridedLayout packed_layout(StridedLayout l, int ops, int V) {
  const int inner = l.ndim - 1;
  l.shape[inner] /= V;
  for (int k = 0; k < ops; ++k) l.strides[k][inner] *= V;
  set_index_math(l, ops);
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

__device__ __forceinline__ void offsets_of(const StridedLayout& l, int64_t linear, int count,
                                           int64_t* off) {
  for (int k = 0; k < count; ++k) off[k] = 0;
  if (l.ndim == 0) return;
  if (l.narrow) {
    uint32_t rest = static_cast<uint32_t>(linear);
    for (int d = l.ndim - 1; d > 0; --d) {
      const uint32_t q = l.divider[d].div(rest);
      const uint32_t idx = rest - q * l.divider[d].divisor;
      rest = q;
      for (int k = 0; k < count; ++k) off[k] += static_cast<int64_t>(idx) * l.strides[k][d];
    }
    for (int k = 0; k < count; ++k) off[k] += static_cast<int64_t>(rest) * l.strides[k][0];
    return;
  }
  for (int d = l.ndim - 1; d > 0; --d) {
    const int64_t idx = linear % l.shape[d];
    linear /= l.shape[d];
    for (int k = 0; k < count; ++k) off[k] += idx * l.strides[k][d];
  }
  for (int k = 0; k < count; ++k) off[k] += linear * l.strides[k][0];
}

}  // namespace im::kernels::cuda
