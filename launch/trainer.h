// The training loop, on one process or data-parallel over the ranks of a Communicator:
// data, model, optimiser, schedule, evaluation, progress, metrics, checkpoints and resume
// (docs/DESIGN.md, launch/). The same code runs for any number of ranks; with N ranks each
// holds a slice of every global batch, the losses' batch statistics and the gradients are
// reduced over the ranks, and the run computes what one process would (up to summation order).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/checkpoint.h"
#include "dist/communicator.h"
#include "dist/rank_log.h"
#include "launch/metrics.h"
#include "launch/setup_error.h"
#include "launch/train_config.h"
#include "launch/train_step.h"
#include "layers/infomamba.h"
#include "layers/losses.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::launch {

struct EvalResult {
  double top1 = 0, top5 = 0;
  double loss = 0, ce = 0, nce = 0, red = 0, hash = 0;  // means over batches
  int64_t samples = 0;
};

// Takes the input shape and class count from the dataset, so configs need not repeat them.
void fit_model_to_dataset(layers::ModelConfig& model, const data::Dataset& dataset);

// Independent random streams of one run, each a Philox key derived from the run seed.
enum RunStream : uint64_t { kInitStream = 1, kTrainStream = 2, kDataStream = 3 };
uint64_t stream_seed(uint64_t run_seed, uint64_t stream);

// Throws SetupError when `cfg` cannot train on `world` ranks (a global batch smaller than
// the number of ranks). The device and precision are checked by choose_device.
void check_trainable(const RunConfig& cfg, int world);

// The training loader of rank `rank` of `world`: its slice of every global batch.
data::LoaderOptions training_loader_options(const RunConfig& cfg, int rank, int world);

// Opens the training split, reading only the shards behind this rank's columns of the
// batches. Throws SetupError.
data::Dataset open_training_split(const RunConfig& cfg, int rank, int world);

class Trainer {
 public:
  // Opens the data, builds the model and, when `resume` is "auto" or a checkpoint path,
  // reads and verifies the checkpoint to resume from. Local work only (no collectives), so a
  // failing rank can tell the others before any collective starts; throws SetupError for
  // bad input. `comm` (may be null: one process) must outlive the trainer.
  Trainer(RunConfig cfg, dist::Communicator* comm = nullptr, const std::string& resume = "");
  ~Trainer();
  // Trains to the end, evaluating as configured; writes metrics and checkpoints (every
  // checkpoint.every steps and at the end). Returns the final evaluation. Collective.
  EvalResult run();
  EvalResult evaluate();
  layers::InfoMamba& model() { return *model_; }
  // Global total loss of every training step this process ran, in order.
  const std::vector<double>& loss_history() const { return loss_history_; }
  layers::ParameterStore& store() { return *store_; }
  const RunConfig& config() const { return cfg_; }
  // The step training continues from (0, or the resumed checkpoint's step).
  int64_t start_step() const { return resume_ ? resume_->state.step : 0; }
  // run() stopped early on a stop signal or train.max_wall_minutes, after saving a
  // checkpoint: the command exits dist::kRequeueExitCode.
  bool stopped_for_requeue() const { return stop_reason_ != 0; }
  // A file whose appearance stops the run like SIGUSR1 (train --stop-file): for launchers
  // that do not pass signals on to the ranks. Checked by rank 0, at most once a second.
  void set_stop_file(std::string path) { stop_file_ = std::move(path); }

 private:
  bool distributed() const { return comm_ && comm_->size() > 1; }
  void synchronise_initial_parameters();
  dist::TrainingState training_state(int64_t step, int64_t epoch,
                                     const data::SamplerCursor& cursor) const;

  RunConfig cfg_;
  dist::Communicator* comm_ = nullptr;  // the NCCL one on GPUs, once run() has made it
  std::unique_ptr<dist::Communicator> gpu_comm_;
  dist::RankLog log_;
  std::optional<data::Dataset> train_set_, test_set_;
  Generator init_gen_, train_gen_;
  std::unique_ptr<layers::InfoMamba> model_;
  std::unique_ptr<layers::ParameterStore> store_;
  std::unique_ptr<layers::AdamW> optimizer_;
  std::optional<dist::CheckpointContents> resume_;
  std::vector<double> loss_history_;
  int stop_reason_ = 0;
  std::string stop_file_;  // the agreed stop: a signal number, or kWallTimeStop
};

// Evaluates `model` on `dataset` in batches (eval mode, no gradients). With `comm` (more
// than one rank) each rank evaluates its slice of every batch and the results are global.
EvalResult evaluate_model(layers::InfoMamba& model, const data::Dataset& dataset,
                          const data::DataConfig& data_cfg, const layers::LossConfig& loss_cfg,
                          int64_t batch_size, dist::Communicator* comm = nullptr);

}  // namespace im::launch
