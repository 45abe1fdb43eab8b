// The training step as one CUDA graph (train.cuda_graph). Queuing a step kernel by kernel
// costs the host about as long as the GPU takes to run it, so the GPU waits for launches
// wherever kernels are small. After a few eager warm-up steps (library handles, GEMM
// algorithm choices, the allocator's free lists), one step is captured into a graph and
// every later step is one launch: its inputs are copied into the graph's own input
// buffers, the learning rate reaches AdamW through memory the graph reads
// (layers::AdamW::prepare_replay), and every block of memory the capture touched stays in
// a private pool of the caching allocator while the graph lives.
//
// A step that cannot be captured (it reads a value back to the host mid-step, as padded
// text does) leaves the run eager: the reason is kept for one note, and nothing the failed
// capture queued ever runs.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/device.h"
#include "data/collate.h"
#include "launch/phase_timer.h"

namespace im::kernels::cuda {
class Graph;
}

namespace im::launch {

class StepGraph {
 public:
  static constexpr int kEagerWarmupSteps = 2;

  explicit StepGraph(Device device);
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Whether this batch's step goes through the graph (capturing it first when there is
  // none yet). False during the warm-up, after a failed capture, and for a batch whose
  // shapes differ from the captured one's (a short last batch): those run eagerly.
  bool wants(const data::Batch& batch);
  bool captured() const;
  // Captures `queue_step`, which queues one whole step on the compute stream from the
  // graph's input buffers (shaped as `batch`; each replay fills them) and records its
  // phases on the timer it is given. Nothing runs: call replay() for the step itself.
  // Returns false, with failure() set, when the capture failed.
  bool capture(const data::Batch& batch,
               const std::function<void(const data::Batch&, PhaseTimer&)>& queue_step);
  // Copies `batch` into the graph's input buffers and queues one replay.
  void replay(const data::Batch& batch);
  // The GPU phase times of the last replay, added to `phases` (waits for the replay).
  void add_phases(StepPhases& phases);
  const std::string& failure() const { return failure_; }
  size_t nodes() const;

 private:
  Device device_;
  int eager_steps_ = 0;
  std::string failure_;
  std::unique_ptr<kernels::cuda::Graph> graph_;
  int64_t pool_ = 0;
  data::Batch inputs_;  // the graph's input buffers (allocated outside its pool)
  StepPhases capture_phases_;
  std::unique_ptr<PhaseTimer> timer_;  // its events are recorded by every replay
};

}  // namespace im::launch
