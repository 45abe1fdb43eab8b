// Reads one dataset shard after checking it against its manifest entry, so a corrupt,
// truncated, stale or mislabelled file is reported when the dataset is opened rather
// than as a crash or a silently wrong run later.
#pragma once

#include <cstdint>
#include <string>

#include "proto/dataset.pb.h"

namespace im::data {

namespace proto = ::infomamba::proto;  // the generated schema classes

// Checks <dir>/<info.file> and reads its samples into `inputs` (room for
// info.num_samples() samples: uint8 C·H·W each for images, int32 L each for text) and
// `labels` (info.num_samples() int32). In order, it checks: the file exists; its size
// and CRC32C match the manifest; HDF5 opens it; format_version, modality, sample_shape,
// num_classes and split attributes agree with the manifest; `inputs` and `labels`
// have the manifest's dtype and shape and its sample count; every label lies in
// [0, num_classes). Any failure throws im::Error with one line
// "shard <path>: <problem>". Uses HDF5, so call it from one thread at a time.
void read_shard(const std::string& dir, const proto::DatasetManifest& manifest,
                const proto::ShardInfo& info, void* inputs, int32_t* labels);

}  // namespace im::data
