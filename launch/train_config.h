// A whole run, as resolved from a TOML file plus --set overrides (launch/config.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "layers/model_config.h"
#include "layers/optim_config.h"

namespace im::launch {

struct TrainConfig {
  int64_t epochs = 1;
  int64_t max_steps = 0;       // stop after this many steps (0 = run all epochs)
  int64_t batch_size = 64;     // global batch
  double warmup_epochs = 0.0;  // linear warm-up length, in epochs (fractions allowed)
  std::string schedule = "cosine";
  double min_lr = 0.0;
  int64_t eval_every = 0;          // steps between evaluations; 0 = at the end of each epoch
  int64_t log_every = 50;          // steps between progress lines
  std::string precision = "fp32";  // fp32 | bf16 (GPU only: bf16 model, float32 masters)
  std::string device = "cpu";      // cpu | cuda | auto (a GPU if there is one)
  bool tf32 = true;                // TF32 tensor cores for float32 GEMMs on a GPU
  bool cuda_graph = true;          // one GPU: the step replays as a CUDA graph (step_graph.h)
  double max_wall_minutes = 0.0;   // save and exit for requeue after this long; 0 = no limit
};

// When the trainer writes checkpoints (docs/CHECKPOINT.md).
struct CheckpointConfig {
  int64_t every = 500;  // steps between checkpoints; 0 = only at the end
  int64_t keep = 3;     // the newest checkpoints kept; older ones are deleted
};

// Data-parallel settings (docs/DESIGN.md, dist/).
struct DistConfig {
  int64_t bucket_mb = 25;  // gradient all-reduce bucket size in MiB
  double timeout_s = 300;  // longest wait in one collective before the run ends; 0 = none
};

struct RunConfig {
  std::string source_file;             // the TOML file it came from
  std::vector<std::string> overrides;  // the --set "key=value" strings applied after it, in order
  std::string name = "run";
  std::string run_dir = "runs/run";
  uint64_t seed = 0;
  bool rank_logs = false;  // every rank also writes run_dir/logs/rank_NNNNN.log
  data::DataConfig data;
  layers::ModelConfig model;
  layers::LossConfig loss;
  layers::OptimConfig optim;
  TrainConfig train;
  CheckpointConfig checkpoint;
  DistConfig dist;
};

}  // namespace im::launch
