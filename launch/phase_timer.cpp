#include "launch/phase_timer.h"

#if IM_WITH_CUDA
#include "kernels/cuda/graph.h"
#include "kernels/cuda/stream.h"
#endif

namespace im::launch {

PhaseTimer::PhaseTimer(StepPhases* phases, Device device)
    : phases_(phases), on_gpu_(phases && device.is_cuda()), start_(Clock::now()), last_(start_) {
#if IM_WITH_CUDA
  if (on_gpu_) {
    events_.push_back(kernels::cuda::create_event(/*timing=*/true));
    kernels::cuda::record_event_in_graph(events_.back(), kernels::cuda::current_stream());
  }
#endif
}

PhaseTimer::~PhaseTimer() {
#if IM_WITH_CUDA
  for (void* e : events_) kernels::cuda::destroy_event(e);
#endif
}

void PhaseTimer::mark(double StepPhases::*phase) {
  if (!phases_) return;
#if IM_WITH_CUDA
  if (on_gpu_) {
    events_.push_back(kernels::cuda::create_event(/*timing=*/true));
    kernels::cuda::record_event_in_graph(events_.back(), kernels::cuda::current_stream());
    owners_.push_back(phase);
    return;
  }
#endif
  const Clock::time_point now = Clock::now();
  phases_->*phase += std::chrono::duration<double>(now - last_).count();
  last_ = now;
}

void PhaseTimer::queued() {
  if (on_gpu_) phases_->host_queue += std::chrono::duration<double>(Clock::now() - start_).count();
}

void PhaseTimer::finish(StepPhases* into) {
#if IM_WITH_CUDA
  if (!on_gpu_ || owners_.empty()) return;
  StepPhases* target = into ? into : phases_;
  kernels::cuda::event_synchronize(events_.back());
  for (size_t i = 0; i < owners_.size(); ++i)
    target->*owners_[i] += 1e-3 * kernels::cuda::event_elapsed_ms(events_[i], events_[i + 1]);
#else
  (void)into;
#endif
}

}  // namespace im::launch
