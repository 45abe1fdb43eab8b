// One data-parallel training step (forward, losses, backward with the gradient all-reduce
// overlapping it, clipping, AdamW), the one code path that both `train` (launch/trainer.cpp)
// and `bench` (launch/bench.cpp) run, so the benchmark measures exactly what trains.
#pragma once

#include <memory>

#include "core/error.h"
#include "core/rng.h"
#include "data/collate.h"
#include "dist/communicator.h"
#include "dist/reducer.h"
#include "launch/step_graph.h"
#include "launch/step_phases.h"
#include "launch/train_config.h"
#include "layers/batch_reduce.h"
#include "layers/infomamba.h"
#include "layers/losses.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::launch {

// The loss stopped being finite. Every rank sees the same (global) loss, so every rank
// throws this at the same step: no rank needs to abort the others.
class DivergedError : public Error {
 public:
  explicit DivergedError(const std::string& what) : Error(what) {}
};

struct StepResult {
  layers::ModelOutput out;
  layers::LossTerms terms;
  double loss = 0;       // global total loss (the same on every rank)
  double grad_norm = 0;  // before clipping
};

// The batch's inputs and labels on `device` (the same batch when it is already there).
// Host-to-device copies are queued on the compute stream, ahead of the step's kernels.
data::Batch on_device(const data::Batch& batch, Device device);

class TrainStep {
 public:
  // With `comm` of more than one rank this is collective: it duplicates `comm` for the
  // losses' batch statistics and builds the gradient reducer (dist.bucket_mb). Everything
  // passed must outlive the step; `gen` draws drop-path masks.
  TrainStep(layers::InfoMamba& model, layers::ParameterStore& store, layers::AdamW& optimizer,
            const RunConfig& cfg, dist::Communicator* comm, Generator& gen);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // Trains on this rank's slice of a global batch at learning rate `lr`. `step` (0-based)
  // names the step in the divergence error (a loss or gradient norm that is not finite),
  // thrown with nothing updated. With `phases`, records how long each phase took.
  StepResult run(const data::Batch& batch, double lr, int64_t step, StepPhases* phases = nullptr);
  // Whether steps now replay a captured CUDA graph (train.cuda_graph, launch/step_graph.h).
  bool graphed() const { return graph_ && graph_->captured(); }

 private:
  struct Pending {  // a step queued on the device, not yet read
    StepResult result;
    layers::ClipOutcome clip;
    int64_t step = 0;
  };
  void queue(const data::Batch& batch, double lr, PhaseTimer& timer, Pending& p);
  StepResult finish(Pending& p);
  void capture_graph(const data::Batch& batch, double lr);
  StepResult replay_graph(const data::Batch& batch, double lr, int64_t step, StepPhases* phases);

  layers::InfoMamba& model_;
  layers::ParameterStore& store_;
  layers::AdamW& optimizer_;
  const layers::LossConfig loss_;
  const double grad_clip_;
  const int64_t num_classes_;
  std::unique_ptr<dist::Communicator> stats_comm_;  // the losses' batch statistics
  layers::BatchReduce batch_reduce_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  layers::ForwardContext ctx_;
  std::unique_ptr<StepGraph> graph_;
  Pending captured_;  // the captured step's outputs, rewritten by every replay
};

}  // namespace im::launch
