// Dataset and loader settings ([data] table of a run config).
#pragma once

#include <cstdint>
#include <string>

namespace im::data {

struct DataConfig {
  std::string dir = "datasets/fashion-mnist";  // holds manifest.pb and the shard files
  std::string train_split = "train";
  std::string test_split = "test";
  bool normalize = true;        // per-channel mean/std of the training split (manifest)
  int64_t augment_crop_pad = 0; // random crop after zero padding by this many pixels; 0 off
  bool augment_flip = false;    // random horizontal flip
  int64_t workers = 2;          // background threads assembling batches
  int64_t prefetch = 4;         // batches kept ready ahead of the consumer
  int64_t train_subset = 0;     // use only the first N training samples (0 = all)
  int64_t test_subset = 0;      // likewise for the test split
};

}  // namespace im::data
