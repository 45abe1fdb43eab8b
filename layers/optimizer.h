// AdamW over the flat parameter buffer, global gradient-norm clipping, and the learning
// rate schedule (linear warm-up, then cosine or constant).
#pragma once

#include <cstdint>

#include "layers/optim_config.h"
#include "layers/parameter_store.h"

namespace im::layers {

class AdamW {
 public:
  AdamW(ParameterStore& store, const OptimConfig& cfg);
  // One update with learning rate `lr` from the store's flat gradients.
  void step(double lr);
  int64_t steps_taken() const { return steps_; }
  // Optimiser state, for checkpoints.
  Tensor& exp_avg() { return exp_avg_; }
  Tensor& exp_avg_sq() { return exp_avg_sq_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 private:
  ParameterStore& store_;
  OptimConfig cfg_;
  Tensor exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
};

// Global L2 norm of the flat gradients; when above max_norm (> 0) the gradients are
// scaled down to it. Returns the norm before clipping.
double clip_grad_norm(ParameterStore& store, double max_norm);

// Learning rate at `step` (0-based): linear warm-up over warmup_steps to base_lr, then
// cosine decay to min_lr at total_steps (or constant).
double learning_rate(const ScheduleConfig& schedule, double base_lr, int64_t step);

}  // namespace im::layers
