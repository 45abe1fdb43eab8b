// How long each phase of a training step took (launch/train_step.h, launch/phase_timer.h).
#pragma once

namespace im::launch {

// Seconds of a step's phases on this rank (docs/PERFORMANCE.md): the host's wall clock on
// the CPU, GPU time between events on a GPU (launch/phase_timer.h).
struct StepPhases {
  double forward = 0;    // model forward and losses (their batch statistics' all-reduces too)
  double backward = 0;   // backward; gradient buckets start their all-reduces during it
  double comm = 0;       // waiting on the reducer after backward: what overlap did not hide
  double optimizer = 0;  // zeroing gradients, clipping, AdamW
  // GPU: the host's time to queue the whole step, before its one wait. Close to the step
  // time, the GPU waits on the host (launch-bound); well below it, the host waits on the GPU.
  double host_queue = 0;
};

}  // namespace im::launch
