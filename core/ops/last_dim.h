// Row kernels (softmax, topk) work on a contiguous [rows, cols] buffer whose last axis
// is the op's dimension. These helpers move that dimension last and back.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace im::detail {

struct LastDimPlan {
  int64_t dim = 0;            // wrapped
  bool already_last = true;   // no permute needed
  std::vector<int64_t> perm;  // dims other than `dim`, then `dim`
  std::vector<int64_t> inverse;
  int64_t rows = 1, cols = 1;
};

// A 0-d tensor is treated as one row of one element (dim 0 or -1), as in PyTorch.
inline LastDimPlan plan_last_dim(const Shape& shape, int64_t dim, const char* op) {
  const int64_t n = static_cast<int64_t>(shape.size());
  LastDimPlan p;
  p.dim = wrap_dim(dim, n == 0 ? 1 : n, op);
  if (n == 0) return p;
  for (int64_t d = 0; d < n; ++d)
    if (d != p.dim) p.perm.push_back(d);
  p.perm.push_back(p.dim);
  p.inverse.resize(n);
  for (int64_t i = 0; i < n; ++i) p.inverse[p.perm[i]] = i;
  p.already_last = p.dim == n - 1;
  p.cols = shape[p.dim];
  for (int64_t d = 0; d < n; ++d)
    if (d != p.dim) p.rows *= shape[d];
  return p;
}

// x as contiguous rows (outside autograd; a no-copy view when x is already laid out so).
inline Tensor to_rows(const Tensor& x, const LastDimPlan& p) {
  const Tensor d = x.detach();
  return (p.already_last ? d : d.permute(p.perm)).contiguous();
}

// A contiguous buffer in the permuted layout (its last size may differ from cols, as
// for topk) back in the original dimension order, contiguous.
inline Tensor from_rows(const Tensor& rows, const LastDimPlan& p) {
  return p.already_last ? rows : rows.permute(p.inverse).contiguous();
}

}  // namespace im::detail
