#include "layers/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "kernels/cpu/adamw.h"

namespace im::layers {

AdamW::AdamW(ParameterStore& store, const OptimConfig& cfg)
    : store_(store),
      cfg_(cfg),
      exp_avg_(Tensor::zeros({store.numel()}, store.flat_params().dtype())),
      exp_avg_sq_(Tensor::zeros({store.numel()}, store.flat_params().dtype())) {}

void AdamW::step(double lr) {
  ++steps_;
  kernels::cpu::AdamWStep s{lr,
                            cfg_.beta1,
                            cfg_.beta2,
                            cfg_.eps,
                            cfg_.weight_decay,
                            1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_)),
                            1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_))};
  Tensor& p = store_.flat_params();
  dispatch_float(p.dtype(), "adamw", [&]<typename T>() {
    kernels::cpu::adamw<T>(p.data<T>(), store_.flat_grads().data<T>(), exp_avg_.data<T>(),
                           exp_avg_sq_.data<T>(), store_.decay_mask().data<T>(), p.numel(), s);
  });
}

double clip_grad_norm(ParameterStore& store, double max_norm) {
  Tensor& g = store.flat_grads();
  return dispatch_float(g.dtype(), "clip_grad_norm", [&]<typename T>() {
    const double norm = std::sqrt(kernels::cpu::sum_of_squares<T>(g.data<T>(), g.numel()));
    if (max_norm > 0 && norm > max_norm)
      kernels::cpu::scale<T>(g.data<T>(), static_cast<T>(max_norm / (norm + 1e-6)), g.numel());
    return norm;
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
  return schedule.min_lr +
         (base_lr - schedule.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace im::layers
