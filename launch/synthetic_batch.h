// Random inputs and labels in the model's input shape, made in memory, so that
// `bench --data synthetic` measures the model without a dataset on disk.
#pragma once

#include <cstdint>

#include "data/collate.h"
#include "layers/model_config.h"

namespace im::launch {

// Rank `rank` of `world`'s slice of a global batch of `global_batch` samples (the columns
// the sampler would give it): standard-normal images [b, C, H, W] (what normalised pixels
// look like) or token ids [b, max_len] uniform over the vocabulary, and labels uniform over
// the classes. Deterministic in (seed, rank).
data::Batch synthetic_batch(const layers::ModelConfig& model, int64_t global_batch, int rank,
                            int world, uint64_t seed);

}  // namespace im::launch
