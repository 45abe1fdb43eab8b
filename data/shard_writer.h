// Writes dataset shards: one HDF5 file per shard, laid out as docs/DATA_FORMAT.md says.
// Converters call this per shard, then write the manifest from the returned entries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/dataset.pb.h"

namespace im::data {

namespace proto = ::infomamba::proto;  // the generated schema classes

// What every sample of a shard shares.
struct ShardHeader {
  std::string split;                  // "train", "test", ...
  std::vector<int64_t> sample_shape;  // C, H, W for images; L for text
  int64_t num_classes = 0;
};

// Writes `n` images (uint8, n × C × H × W bytes) and their labels to a new shard file
// at `path` (replacing any file there), fsyncs it, and returns its manifest entry:
// file name, split, num_samples, CRC32C and size of the file's bytes. Labels are
// written as given (the reader checks their range). Throws im::Error naming the path.
proto::ShardInfo write_image_shard(const std::string& path, const ShardHeader& header,
                                   const uint8_t* images, const int32_t* labels, int64_t n);

// Likewise for text: `n` sequences of L int32 tokens.
proto::ShardInfo write_text_shard(const std::string& path, const ShardHeader& header,
                                  const int32_t* tokens, const int32_t* labels, int64_t n);

}  // namespace im::data
