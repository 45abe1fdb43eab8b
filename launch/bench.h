// `infomamba_dist bench`: times real training steps of the configured model, the same step
// `train` runs (launch/train_step.h), on synthetic or real data, data-parallel over the
// ranks of a Communicator (docs/PERFORMANCE.md).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/rng.h"
#include "data/collate.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "launch/bench_report.h"
#include "launch/train_config.h"
#include "layers/infomamba.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::launch {

struct BenchOptions {
  int64_t warmup = 5;      // steps run first and not timed (allocations, caches, threads)
  int64_t steps = 20;      // timed steps
  bool real_data = false;  // the configured training split instead of synthetic batches
  bool inference = false;  // forward passes only (eval mode, no autograd), not training steps
  int64_t kernel_profile_rows = 0;  // > 0: CUPTI GPU time per kernel over the timed steps
};

class Bench {
 public:
  // Local work only (no collectives), so that a failure can be agreed between the ranks:
  // checks the config, opens the training split (real data) or makes the synthetic batch,
  // builds model and optimiser. Throws SetupError. `comm` (may be null) must outlive it.
  Bench(RunConfig cfg, BenchOptions options, dist::Communicator* comm = nullptr);
  ~Bench();
  // Collective: warm-up and timed steps, then one all-reduce agreeing the timings.
  BenchMeasurement run();
  // The run config as benchmarked: with real data, the model fitted to the dataset.
  const RunConfig& config() const { return cfg_; }
  // The model's parameter count (the flat store's numel adds alignment padding).
  int64_t num_parameters() const { return model_->num_parameters(); }
  Device device() const { return store_->device(); }
  // With --kernel-profile, this rank's kernel table of the timed steps after run().
  const std::string& kernel_profile() const { return kernel_profile_; }

 private:
  data::Batch next_batch();
  // One timed forward pass in eval mode without autograd (--mode inference).
  StepTiming run_inference(const data::Batch& batch);

  RunConfig cfg_;
  BenchOptions options_;
  dist::Communicator* comm_;  // the NCCL one on GPUs, once run() has made it
  std::unique_ptr<dist::Communicator> gpu_comm_;
  Generator init_gen_, train_gen_;
  std::unique_ptr<data::Loader> loader_;  // real data
  data::Batch synthetic_;                 // synthetic data: one batch, reused every step
  std::unique_ptr<layers::InfoMamba> model_;
  std::unique_ptr<layers::ParameterStore> store_;
  std::unique_ptr<layers::AdamW> optimizer_;
  std::string kernel_profile_;
};

}  // namespace im::launch
