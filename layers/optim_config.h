// Optimiser settings ([optim] table of a run config) and the learning-rate schedule
// (derived from the [train] table).
#pragma once

#include <cstdint>
#include <string>

namespace im::layers {

struct OptimConfig {
  double lr = 2e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.05;
  double grad_clip = 1.0;  // global grad-norm clip; 0 disables
};

struct ScheduleConfig {
  std::string kind = "cosine";  // cosine | constant
  int64_t warmup_steps = 0;     // linear warm-up from 0 to lr
  int64_t total_steps = 1;      // cosine decays to min_lr at this step
  double min_lr = 0.0;
};

}  // namespace im::layers
