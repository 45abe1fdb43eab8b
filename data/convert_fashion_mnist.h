// Converts an IDX image classification set (Fashion-MNIST, MNIST: the same file names)
// into HDF5 shards plus manifest.pb (docs/DATA_FORMAT.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace im::data {

struct ConvertSummary {
  int64_t train_samples = 0;
  int64_t test_samples = 0;
  int64_t train_shards = 0;
  int64_t test_shards = 0;
  std::vector<float> channel_mean;  // of the training images, pixel/255
  std::vector<float> channel_std;
};

// Reads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte (each plain or with .gz) from `src_dir` and writes
// `num_shards` train and `num_shards` test shards to `out_dir` (fewer when a split has
// fewer samples than that; samples go contiguously, shard sizes differ by at most one),
// then manifest.pb, last and atomically: an interrupted conversion leaves no manifest.
// `name` is recorded in the manifest and picks the class names (Fashion-MNIST's for
// "fashion-mnist", "0".."9" otherwise). Throws im::Error naming the file at fault.
ConvertSummary convert_idx_dataset(const std::string& src_dir, const std::string& out_dir,
                                   int64_t num_shards, const std::string& name);

// Per-shard sample counts for `n` samples in at most `num_shards` contiguous shards,
// none empty, sizes differing by at most one (larger first).
std::vector<int64_t> shard_sizes(int64_t n, int64_t num_shards);

// Per-channel mean and (population) standard deviation of uint8 images
// [count, channels, pixels], in pixel/255 units.
void channel_stats(const uint8_t* images, int64_t count, int64_t channels, int64_t pixels,
                   std::vector<float>& mean, std::vector<float>& std);

}  // namespace im::data
