#include "layers/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/device.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "kernels/cpu/adamw.h"

#if IM_WITH_CUDA
#include "kernels/cuda/adamw.h"
#endif

namespace im::layers {

AdamW::AdamW(ParameterStore& store, const OptimConfig& cfg)
    : store_(store),
      cfg_(cfg),
      exp_avg_(Tensor::zeros({store.numel()}, store.master_params().dtype(),
                             store.master_params().device())),
      exp_avg_sq_(Tensor::zeros({store.numel()}, store.master_params().dtype(),
                                store.master_params().device())) {}

void AdamW::step(double lr) {
  ++steps_;
  kernels::cpu::AdamWStep s{lr,
                            cfg_.beta1,
                            cfg_.beta2,
                            cfg_.eps,
                            cfg_.weight_decay,
                            1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_)),
                            1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_))};
  Tensor& p = store_.master_params();
  const Tensor& g = store_.flat_grads();
  const Tensor& mask = store_.decay_mask();
  // Every buffer is one flat contiguous tensor of the masters' dtype and device (a
  // checkpoint restore copies into exp_avg/exp_avg_sq, so they stay where they were made).
  const Tensor* buffers[] = {&g, &exp_avg_, &exp_avg_sq_, &mask};
  for (const Tensor* t : buffers) {
    IM_CHECK(t->dtype() == p.dtype() && t->device() == p.device() && t->numel() == p.numel() &&
                 t->is_contiguous() && p.is_contiguous(),
             "adamw: ", t->describe(), " does not match the flat parameters ", p.describe());
  }
  if (store_.has_master()) {
    Tensor& model = store_.flat_params();
    IM_CHECK(p.dtype() == DType::Float32 && model.dtype() == DType::BFloat16 &&
                 p.device().is_cuda() && model.is_contiguous(),
             "adamw: mixed precision needs float32 masters and a bfloat16 model on a GPU, got ",
             p.describe(), " and ", model.describe());
#if IM_WITH_CUDA
    kernels::cuda::adamw_mixed(p.data<float>(), model.data<bfloat16>(), g.data<float>(),
                               exp_avg_.data<float>(), exp_avg_sq_.data<float>(),
                               mask.data<float>(), p.numel(), s);
#endif
    return;
  }
  dispatch_float(p.dtype(), "adamw", [&]<typename T>() {
    if (p.device().is_cpu()) {
      kernels::cpu::adamw<T>(p.data<T>(), g.data<T>(), exp_avg_.data<T>(), exp_avg_sq_.data<T>(),
                             mask.data<T>(), p.numel(), s);
      return;
    }
#if IM_WITH_CUDA
    kernels::cuda::adamw<T>(p.data<T>(), g.data<T>(), exp_avg_.data<T>(), exp_avg_sq_.data<T>(),
                            mask.data<T>(), p.numel(), s);
#endif
  });
}

double clip_grad_norm(ParameterStore& store, double max_norm) {
  Tensor& g = store.flat_grads();
  IM_CHECK(g.is_contiguous(), "clip_grad_norm: flat gradients ", g.describe(),
           " are not contiguous");
  return dispatch_float(g.dtype(), "clip_grad_norm", [&]<typename T>() {
    if (g.device().is_cpu()) {
      const double norm = std::sqrt(kernels::cpu::sum_of_squares<T>(g.data<T>(), g.numel()));
      if (max_norm > 0 && norm > max_norm)
        kernels::cpu::scale<T>(g.data<T>(), static_cast<T>(max_norm / (norm + 1e-6)), g.numel());
      return norm;
    }
#if IM_WITH_CUDA
    // Reduced on the device; only the one double comes back (this waits for the stream).
    const Tensor ws = Tensor::empty(
        {static_cast<int64_t>(kernels::cuda::sum_of_squares_workspace_bytes(g.numel()))},
        DType::UInt8, g.device());
    const double norm =
        std::sqrt(kernels::cuda::sum_of_squares<T>(g.data<T>(), g.numel(), ws.data_ptr()));
    if (max_norm > 0 && norm > max_norm)
      kernels::cuda::scale<T>(g.data<T>(), static_cast<T>(max_norm / (norm + 1e-6)), g.numel());
    return norm;
#else
    throw Error("clip_grad_norm: " + g.describe() + ": " + cuda_unavailable_reason());
#endif
  });
}

double learning_rate(const ScheduleConfig& schedule, double base_lr, int64_t step) {
  if (step < schedule.warmup_steps)
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  if (schedule.kind == "constant") return base_lr;
  IM_CHECK(schedule.kind == "cosine", "unknown learning-rate schedule '", schedule.kind, "'");
  const int64_t decay_steps = std::max<int64_t>(1, schedule.total_steps - schedule.warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(step - schedule.warmup_steps) / decay_steps, 0.0, 1.0);
  return schedule.min_lr + (base_lr - schedule.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace im::layers
