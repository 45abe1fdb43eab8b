// Dropout and drop-path (stochastic depth). Masks come from the caller's Generator via
// bernoulli_mask, so a run is reproducible from the generator's (seed, offset) and a
// CUDA kernel given the same state draws the same mask. The mask does not depend on the
// dtype, so a bfloat16 run (GPU only) drops the same elements as a float32 one.
#include "kernels/cpu/dropout.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/op_common.h"

#if IM_WITH_CUDA
#include "kernels/cuda/dropout.h"
#endif

namespace im {

namespace {

// Argument checks come before the draw so a rejected call leaves the generator as it was.
void check_args(const Tensor& x, double p, const char* op) {
  IM_CHECK(x.defined(), op, ": x must be defined");
  IM_CHECK(p >= 0.0 && p < 1.0, op, ": p must be in [0, 1), got ", p);
  // The dtypes of dispatch_compute: float32/float64 anywhere, bfloat16 on a GPU only.
  dispatch_compute(x.dtype(), x.device(), op, []<typename T>() {});
}

Tensor masked_scale(const Tensor& x, const Tensor& mask, int64_t group, double scale,
                    const char* op) {
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  IM_CHECK(mask.device() == x.device(), op, ": mask on ", mask.device().str(), " for ",
           x.describe());
  dispatch_compute(x.dtype(), x.device(), op, [&]<typename T>() {
    // The scale stays in the compute type: 1 / (1 - p) rounded to bfloat16 would be off
    // by up to 2^-9 on every kept element.
    const auto s = static_cast<compute_t<T>>(scale);
    if constexpr (has_cpu_kernel<T>) {
      if (x.device().is_cpu()) {
        kernels::cpu::masked_scale<T>(xc.data<T>(), mask.data<uint8_t>(), group, s, out.data<T>(),
                                      out.numel());
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::masked_scale<T>(xc.data<T>(), mask.data<uint8_t>(), group, s, out.data<T>(),
                                   out.numel());
#endif
  });
  return out;
}

// The mask is a constant of the op: backward applies the same mask and scale.
Tensor apply_mask(const Tensor& x, const Tensor& mask, int64_t group, double scale,
                  const char* op) {
  Tensor out = masked_scale(x.detach(), mask, group, scale, op);
  record_op(op, {x}, {out}, [mask, group, scale, op](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{masked_scale(g[0], mask, group, scale, op)};
  });
  return out;
}

}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen) {
  check_args(x, p, "dropout");
  if (p == 0.0) return x;
  const Tensor mask = bernoulli_mask(x.shape(), 1.0 - p, gen, x.device());
  return apply_mask(x, mask, 1, 1.0 / (1.0 - p), "dropout");
}

Tensor drop_path(const Tensor& x, double p, Generator& gen) {
  check_args(x, p, "drop_path");
  IM_CHECK(x.dim() >= 1, "drop_path: x needs a sample dimension (dim 0), got ", x.describe());
  if (p == 0.0) return x;
  const int64_t samples = x.size(0);
  const Tensor mask = bernoulli_mask({samples}, 1.0 - p, gen, x.device());
  const int64_t group = samples > 0 ? x.numel() / samples : 0;
  return apply_mask(x, mask, group, 1.0 / (1.0 - p), "drop_path");
}

Tensor drop_path(const Tensor& x, double p, Generator& gen, int64_t batch_offset,
                 int64_t batch_size) {
  check_args(x, p, "drop_path");
  IM_CHECK(x.dim() >= 1, "drop_path: x needs a sample dimension (dim 0), got ", x.describe());
  const int64_t samples = x.size(0);
  IM_CHECK(batch_offset >= 0 && batch_offset + samples <= batch_size, "drop_path: samples [",
           batch_offset, ", ", batch_offset + samples, ") do not lie in a batch of ", batch_size);
  if (p == 0.0) return x;
  const Tensor mask = bernoulli_mask({batch_size}, 1.0 - p, gen, x.device())
                          .slice(0, batch_offset, batch_offset + samples)
                          .contiguous();
  const int64_t group = samples > 0 ? x.numel() / samples : 0;
  return apply_mask(x, mask, group, 1.0 / (1.0 - p), "drop_path");
}

}  // namespace im
