// A split of a converted dataset, validated and held in memory. Opening checks the
// manifest and every shard it reads (docs/DATA_FORMAT.md), so a bad file stops the run at
// start-up with one line naming it. A data-parallel rank reads only the shards its part of
// the sampling needs (data/sampler.h); sample indices stay global either way. Copies are
// cheap: they share the sample tensors, which are never written after open.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace im::data {

// One sample: its input (uint8 [C, H, W] for images, int32 [L] for text; a view of
// the dataset's memory) and its label.
struct Sample {
  Tensor input;
  int64_t label = 0;
};

class Dataset {
 public:
  // Reads <dir>/manifest.pb and every shard of `split`, checking each (see
  // read_shard). `subset` > 0 keeps only the first `subset` samples (in shard order)
  // and must not exceed the split's size. Throws im::Error with one line.
  // `only_shards` (indices into the split's shards, in manifest order) limits the files
  // read to those; empty reads every shard. Samples of other shards are then not in memory,
  // and asking for one is an error.
  static Dataset open(const std::string& dir, const std::string& split, int64_t subset = 0,
                      const std::vector<int>& only_shards = {});
  // Samples per shard of `split` after `subset`, from the manifest alone (no shard is read).
  static std::vector<int64_t> shard_sizes(const std::string& dir, const std::string& split,
                                          int64_t subset = 0);

  const std::string& dir() const { return dir_; }
  const std::string& split() const { return split_; }
  const std::string& name() const { return name_; }          // e.g. "fashion-mnist"
  const std::string& modality() const { return modality_; }  // "image" or "text"
  bool is_image() const { return modality_ == "image"; }

  int64_t num_samples() const { return num_samples_; }
  const Shape& sample_shape() const { return sample_shape_; }  // C, H, W or L
  int64_t sample_numel() const { return sample_numel_; }
  int64_t num_classes() const { return num_classes_; }
  // Per-channel statistics of the training split in [0, 1] pixel units (empty for text).
  const std::vector<float>& channel_mean() const { return channel_mean_; }
  const std::vector<float>& channel_std() const { return channel_std_; }
  const std::vector<std::string>& class_names() const { return class_names_; }

  // Random access; i in [0, num_samples()).
  Sample sample(int64_t i) const;
  int64_t label(int64_t i) const;
  // Raw sample memory for batch assembly (the loader); i in [0, num_samples()).
  std::span<const uint8_t> image(int64_t i) const;   // image datasets only
  std::span<const int32_t> tokens(int64_t i) const;  // text datasets only

  // Every sample: inputs [N, ...sample_shape] (uint8 or int32), labels int32 [N]. Only
  // when every shard was read (an error otherwise).
  const Tensor& inputs() const;
  const Tensor& labels() const;

  // Samples per shard (after the subset) and which shards this process read.
  const std::vector<int64_t>& shard_sizes() const { return shard_sizes_; }
  bool shard_loaded(int shard) const { return shards_.at(static_cast<size_t>(shard)).loaded; }
  int64_t shards_read() const;

 private:
  // A shard's samples [begin, begin + count) of the split, in memory when loaded.
  struct Shard {
    int64_t begin = 0, count = 0;
    bool loaded = false;
    std::string file;
    Tensor inputs, labels;  // [count, ...], [count]; views of inputs_/labels_ when all are read
  };

  Dataset() = default;
  // The shard holding sample i (checked: in range and loaded) and i's row within it.
  const Shard& locate(int64_t i, int64_t& row) const;

  std::string dir_, split_, name_, modality_;
  int64_t num_samples_ = 0;
  Shape sample_shape_;
  int64_t sample_numel_ = 0;
  int64_t num_classes_ = 0;
  std::vector<float> channel_mean_, channel_std_;
  std::vector<std::string> class_names_;
  std::vector<int64_t> shard_sizes_;
  std::vector<Shard> shards_;
  Tensor inputs_, labels_;  // the whole split, when every shard was read
};

}  // namespace im::data
