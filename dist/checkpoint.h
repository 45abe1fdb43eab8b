// Sharded checkpoints: run_dir/checkpoints/step_XXXXXXXX/{manifest.pb, rank_00000.h5, ...}
// (docs/CHECKPOINT.md). The model's parameters and AdamW moments live in one flat space;
// rank r of N writes the slice [n·r/N, n·(r+1)/N) of each, so parameters are written once
// and the optimiser state is partitioned across ranks. Rank 0 writes the manifest (the
// global tensor index with CRC32C of every tensor and file) last. Any number of ranks can
// load the result: each reads the slices back into the whole flat space (resharding is
// re-slicing).
//
// A checkpoint is complete and verified, or it does not exist: files are written into
// step_XXXXXXXX.tmp, fsynced and checksummed; the directory is renamed into place and
// fsynced, and only then does run_dir/checkpoints/latest move to it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "data/sampler.h"
#include "dist/communicator.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

namespace im::dist {

struct TrainingState {
  int64_t step = 0;   // optimiser steps completed
  int64_t epoch = 0;  // epoch the next step belongs to
  data::SamplerCursor cursor;
  std::vector<std::pair<std::string, GeneratorState>> rng;
  std::string config_toml;
  int world_size = 1;  // ranks that wrote it (informational when loading)
};

// Rank `rank`'s slice of a flat space of `numel` elements split over `world` ranks.
std::pair<int64_t, int64_t> shard_range(int64_t numel, int rank, int world);

// Writes a checkpoint of the parameters (and optimiser state, when `optimizer` is given)
// and returns its directory. With `comm` this is a collective: every rank calls it with
// identical parameters and state, and each writes its own slice. Keeps only the newest
// `keep` checkpoints (0 = all). Throws im::Error on every rank if any rank failed; the
// previous checkpoints and `latest` are then untouched.
std::string save_checkpoint(const std::string& run_dir, layers::ParameterStore& store,
                            layers::AdamW* optimizer, const TrainingState& state, int keep = 0,
                            Communicator* comm = nullptr);

// Resolves PATH to a checkpoint directory: a step_XXXXXXXX directory itself, or a run
// directory / checkpoints directory through its `latest` file.
std::string resolve_checkpoint(const std::string& path);

// The resolved run config (TOML text) stored in the manifest of checkpoint `dir`, so a
// checkpoint can rebuild its model without the original config file.
std::string checkpoint_config_toml(const std::string& dir);

// A checkpoint read back whole, whatever the number of ranks that wrote it.
struct CheckpointContents {
  std::string dir;
  TrainingState state;
  struct Entry {
    std::string name;
    Shape shape;
    int64_t offset = 0, numel = 0;
  };
  std::vector<Entry> tensors;  // the global tensor index, in flat order
  Tensor params;               // flat float32/float64, as saved
  Tensor exp_avg, exp_avg_sq;  // undefined when not read or not saved
  bool has_optimizer_state = false;
};

// Reads checkpoint `dir` and verifies it: every rank file's size and CRC32C, that the
// files' slices tile the flat space, and every tensor's CRC32C. Throws im::Error with one
// line naming the file that failed.
CheckpointContents read_checkpoint(const std::string& dir, bool with_optimizer_state);

// Verifies (read_checkpoint), checks that the manifest's tensors are exactly the store's
// (names, shapes, offsets), and loads parameters (and optimiser state into `optimizer`
// when given; an error if the checkpoint has none).
TrainingState load_checkpoint(const std::string& dir, layers::ParameterStore& store,
                              layers::AdamW* optimizer);
// The same from contents already read.
TrainingState load_checkpoint(const CheckpointContents& contents, layers::ParameterStore& store,
                              layers::AdamW* optimizer);

// `--resume auto`: the newest checkpoint under run_dir/checkpoints that is complete and
// passes verification. Each one that fails is reported through `warn` (one line naming
// the file and the reason) and skipped. Nothing when there is none.
std::optional<CheckpointContents> newest_valid_checkpoint(
    const std::string& run_dir, bool with_optimizer_state,
    const std::function<void(const std::string&)>& warn);

}  // namespace im::dist
