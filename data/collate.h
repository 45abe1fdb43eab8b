// Turns a batch of sample indices into tensors: images to float32 [B, C, H, W]
// ((pixel/255 - mean)/std when normalising), with optional random crop after zero
// padding and random horizontal flip; text to int64 [B, L]; labels to int64 [B].
// The random choices for a sample come from Philox at (seed, epoch, sample index), so a
// batch's contents never depend on which thread assembled it or when.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace im::data {

struct Batch {
  Tensor inputs;  // float32 [B, C, H, W] (images) or int64 [B, L] (text)
  Tensor labels;  // int64 [B]
  int64_t epoch = 0;
  int64_t index_in_epoch = 0;  // batch number within the epoch
  int64_t global_offset = 0;   // data-parallel: this rank's first sample in the global batch
  int64_t global_size = 0;     // samples in the global batch (all ranks)
};

struct CollateOptions {
  bool normalize = true;    // subtract the channel mean and divide by the std
  int64_t crop_pad = 0;     // random crop after zero padding by this many pixels; 0 off
  bool flip = false;        // random horizontal flip with probability 1/2
  uint64_t seed = 0;        // run seed; augmentation draws from its own stream of it
  bool pin_memory = false;  // batches in pinned host memory (core/pinned_allocator.h)
};

// The augmentation drawn for one sample: crop offsets in [-pad, pad] and the flip.
struct Augmentation {
  int64_t dy = 0;
  int64_t dx = 0;
  bool flip = false;
};

class Collator {
 public:
  // Throws im::Error if the options do not suit the dataset (augmenting text, a crop
  // pad as large as the image).
  Collator(const Dataset& dataset, const CollateOptions& options);

  // Reads only the (immutable) dataset: safe to call from several threads at once.
  Batch operator()(const IndexBatch& batch) const;

  // What the augmentation does to `sample` in `epoch` (identity when off).
  Augmentation augmentation(int64_t epoch, int64_t sample) const;

 private:
  void image_into(float* out, int64_t sample, int64_t epoch) const;

  const Dataset* dataset_;
  CollateOptions options_;
  bool augment_ = false;
  uint64_t key_ = 0;
  // Per channel, the float value of each of the 256 pixel values.
  std::vector<std::array<float, 256>> lut_;
};

}  // namespace im::data
