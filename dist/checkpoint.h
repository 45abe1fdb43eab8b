// Checkpoints: run_dir/checkpoints/step_XXXXXXXX/{manifest.pb, rank_00000.h5, ...}
// (docs/DESIGN.md). A checkpoint is complete and verified, or it does not exist: files
// are written into a temporary directory, fsynced, checksummed, renamed into place,
// and only then does run_dir/checkpoints/latest move to it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "data/sampler.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::dist {

struct TrainingState {
  int64_t step = 0;   // optimiser steps completed
  int64_t epoch = 0;  // epoch the next step belongs to
  data::SamplerCursor cursor;
  std::vector<std::pair<std::string, GeneratorState>> rng;
  std::string config_toml;
};

// Writes a checkpoint of the parameters (and optimiser state, when `optimizer` is given)
// and returns its directory. Keeps only the newest `keep` checkpoints (0 = all).
std::string save_checkpoint(const std::string& run_dir, layers::ParameterStore& store,
                            layers::AdamW* optimizer, const TrainingState& state, int keep = 0);

// Resolves PATH to a checkpoint directory: a step_XXXXXXXX directory itself, or a run
// directory / checkpoints directory through its `latest` file.
std::string resolve_checkpoint(const std::string& path);

// The resolved run config (TOML text) stored in the manifest of checkpoint `dir`, so a
// checkpoint can rebuild its model without the original config file.
std::string checkpoint_config_toml(const std::string& dir);

// Verifies every checksum, checks that the manifest's tensors are exactly the store's
// (names, shapes), and loads parameters (and optimiser state into `optimizer` when given;
// an error if the checkpoint has none). Throws im::Error with one line naming the file.
TrainingState load_checkpoint(const std::string& dir, layers::ParameterStore& store,
                              layers::AdamW* optimizer);

}  // namespace im::dist
