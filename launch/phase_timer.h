// Times the phases of a training step without stalling it. On the CPU each phase is the
// host's wall-clock time (its work is done when its calls return). On a GPU the host only
// queues work, so a mark records an event on the compute stream and the phases are the GPU
// times between events, read once after the step: timing adds no wait and does not stop
// the host from queuing the next phase while the GPU runs this one.
#pragma once

#include <chrono>
#include <vector>

#include "core/device.h"
#include "launch/step_phases.h"

namespace im::launch {

class PhaseTimer {
 public:
  // Times into `phases` when it is given (nothing happens otherwise).
  PhaseTimer(StepPhases* phases, Device device);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  // The time since the previous mark (or the start) belongs to `phase`.
  void mark(double StepPhases::*phase);
  // On a GPU: the whole step is queued; the host time since the start is host_queue.
  void queued();
  // Adds the phases up (into `into`, else the phases given at construction); on a GPU this
  // waits for the last mark. A timer whose marks were captured into a CUDA graph is
  // finished after each replay: the replay recorded its events again.
  void finish(StepPhases* into = nullptr);

 private:
  using Clock = std::chrono::steady_clock;
  StepPhases* phases_;
  bool on_gpu_ = false;
  Clock::time_point start_, last_;
  std::vector<void*> events_;  // GPU: one per mark after the start event
  std::vector<double StepPhases::*> owners_;
};

}  // namespace im::launch
