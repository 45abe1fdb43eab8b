// Inclusive cumulative sum along a dim; its backward is the reverse cumulative sum of
// the gradient (each input feeds every later output).
#include "kernels/cpu/cumsum.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"

#if IM_WITH_CUDA
#include "kernels/cuda/cumsum.h"
#endif

namespace im {

namespace {

struct ScanShape {
  int64_t outer = 1, n = 1, inner = 1;
};

// A 0-d tensor scans as a single element (dim 0 or -1), as in PyTorch.
ScanShape scan_shape(const Shape& shape, int64_t dim) {
  ScanShape s;
  if (shape.empty()) return s;
  s.n = shape[dim];
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) s.inner *= shape[d];
  return s;
}

Tensor cumsum_kernel(const Tensor& x, const ScanShape& s, bool reverse) {
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  dispatch_compute(x.dtype(), x.device(), "cumsum", [&]<typename T>() {
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::cumsum<T>(xc.data<T>(), out.data<T>(), s.outer, s.n, s.inner, reverse);
        return;
      }
    }
#if IM_WITH_CUDA
    const size_t bytes = kernels::cuda::cumsum_workspace_bytes(s.outer, s.n, s.inner);
    const Tensor ws = bytes > 0
                          ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::UInt8, x.device())
                          : Tensor();
    kernels::cuda::cumsum<T>(xc.data<T>(), out.data<T>(), s.outer, s.n, s.inner, reverse,
                             ws.defined() ? ws.data_ptr() : nullptr);
#endif
  });
  return out;
}

}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  IM_CHECK(x.defined(), "cumsum: input is undefined");
  dim = wrap_dim(dim, x.dim() == 0 ? 1 : x.dim(), "cumsum");
  const ScanShape s = scan_shape(x.shape(), dim);
  Tensor out = cumsum_kernel(x, s, /*reverse=*/false);
  record_op("cumsum", {x}, {out}, [s](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{cumsum_kernel(g[0], s, /*reverse=*/true)};
  });
  return out;
}

}  // namespace im
