// AdamW over the flat parameter buffer, global gradient-norm clipping, and the learning
// rate schedule (linear warm-up, then cosine or constant).
#pragma once

#include <cstdint>

#include "kernels/cpu/adamw.h"
#include "layers/optim_config.h"
#include "layers/parameter_store.h"

namespace im::layers {

// What clipping decided for the step that follows, on the gradients' device: a GPU step
// keeps it there, so neither the norm nor the decision to update costs a host round trip
// (the host reads it once, after the step has been queued).
constexpr int kClipNormField = 0, kClipScaleField = 1, kClipFiniteField = 2;  // in status
struct ClipOutcome {
  Tensor status;  // float64 [3]: the norm, the factor applied, 1 when the loss and norm are finite
  // These wait for the device when the status is on a GPU.
  double norm() const;
  bool finite() const;
};

class AdamW {
 public:
  AdamW(ParameterStore& store, const OptimConfig& cfg);
  // One update with learning rate `lr` from the store's flat gradients. With `clip`, the
  // update is skipped where clip->finite() is false (decided on the device, the step count
  // still advances: undo it with set_steps_taken when the caller gives up on the step).
  //
  // Called while the GPU stream is captured into a graph, the kernel reads the step's
  // constants from device memory, which a copy from a pinned host buffer fills at the start
  // of each replay: call prepare_replay before every launch of that graph.
  void step(double lr, const ClipOutcome* clip = nullptr);
  // Counts a step and writes its constants (learning rate `lr`) for the next replay.
  void prepare_replay(double lr);
  int64_t steps_taken() const { return steps_; }
  // Optimiser state, for checkpoints.
  Tensor& exp_avg() { return exp_avg_; }
  Tensor& exp_avg_sq() { return exp_avg_sq_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

 private:
  kernels::cpu::AdamWStep constants(double lr) const;  // for step steps_ (1-based)

  ParameterStore& store_;
  OptimConfig cfg_;
  Tensor exp_avg_, exp_avg_sq_;
  int64_t steps_ = 0;
  // Graph replays: the constants' pinned host copy and their device copy.
  kernels::cpu::AdamWStep* replay_host_ = nullptr;
  Tensor replay_device_;
};

// Global L2 norm of the flat gradients; when above max_norm (> 0) the gradients are
// scaled down to it (a norm that is not finite scales nothing). Returns the norm before
// clipping; on a GPU this waits for the device.
double clip_grad_norm(ParameterStore& store, double max_norm);

// The same clipping, with the verdict on whether the step may update anything: the
// gradients' norm and `loss` (a one-element tensor on their device) must both be finite.
ClipOutcome clip_grad_norm_checked(ParameterStore& store, double max_norm, const Tensor& loss);

// Learning rate at `step` (0-based): linear warm-up over warmup_steps to base_lr, then
// cosine decay to min_lr at total_steps (or constant).
double learning_rate(const ScheduleConfig& schedule, double base_lr, int64_t step);

}  // namespace im::layers
