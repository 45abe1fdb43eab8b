// The single-process training loop: data, model, optimiser, schedule, evaluation,
// progress, metrics and the final checkpoint (docs/DESIGN.md, launch/).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "launch/metrics.h"
#include "launch/train_config.h"
#include "layers/infomamba.h"
#include "layers/losses.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::launch {

// A problem with what the user gave us (config, data, checkpoint): the command prints
// it as one line and exits 2, before any training has happened.
class SetupError : public Error {
 public:
  explicit SetupError(const std::string& what) : Error(what) {}
};

struct EvalResult {
  double top1 = 0, top5 = 0;
  double loss = 0, ce = 0, nce = 0, red = 0, hash = 0;  // means over batches
  int64_t samples = 0;
};

// Takes the input shape and class count from the dataset, so configs need not repeat them.
void fit_model_to_dataset(layers::ModelConfig& model, const data::Dataset& dataset);

// Independent random streams of one run, each a Philox key derived from the run seed.
uint64_t stream_seed(uint64_t run_seed, uint64_t stream);

class Trainer {
 public:
  // Opens the data and builds the model; throws SetupError for bad input.
  explicit Trainer(RunConfig cfg);
  // Trains to the end, evaluating as configured; writes metrics and a final checkpoint.
  // Returns the final evaluation.
  EvalResult run();
  EvalResult evaluate();
  layers::InfoMamba& model() { return *model_; }
  // Total loss of every training step so far, in order.
  const std::vector<double>& loss_history() const { return loss_history_; }
  layers::ParameterStore& store() { return *store_; }

 private:
  RunConfig cfg_;
  std::optional<data::Dataset> train_set_, test_set_;
  Generator init_gen_, train_gen_;
  std::unique_ptr<layers::InfoMamba> model_;
  std::unique_ptr<layers::ParameterStore> store_;
  std::unique_ptr<layers::AdamW> optimizer_;
  std::vector<double> loss_history_;
};

// Evaluates `model` on `dataset` in batches (eval mode, no gradients).
EvalResult evaluate_model(layers::InfoMamba& model, const data::Dataset& dataset,
                          const data::DataConfig& data_cfg, const layers::LossConfig& loss_cfg,
                          int64_t batch_size);

}  // namespace im::launch
