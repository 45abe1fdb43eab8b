// Reversal along one dim: the copy kernel reads the source through a negative stride,
// so no index tensor is built. The result is a fresh contiguous tensor (views with
// negative strides are never handed out: other ops assume non-negative strides).
#include "core/autograd.h"
#include "core/ops.h"
#include "core/tensor_impl.h"

namespace im {

Tensor flip(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.dim(), "flip");
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (x.numel() > 0) {
    auto reversed = std::make_shared<TensorImpl>();
    reversed->storage = x.impl()->storage;
    reversed->shape = x.shape();
    reversed->strides = x.strides();
    reversed->dtype = x.dtype();
    reversed->offset = x.storage_offset() + (x.size(d) - 1) * x.strides()[d];
    reversed->strides[d] = -x.strides()[d];
    out.copy_(Tensor(std::move(reversed)));
  }
  record_op("flip", {x}, {out}, [d](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{flip(g[0], d)};
  });
  return out;
}

}  // namespace im
