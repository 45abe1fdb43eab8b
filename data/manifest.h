// The dataset manifest (manifest.pb, a binary DatasetManifest): naming of shard files,
// reading with validation of the manifest's own fields, and atomic writing.
#pragma once

#include <cstdint>
#include <string>

#include "proto/dataset.pb.h"

namespace im::data {

namespace proto = ::infomamba::proto;  // the generated schema classes

// The only shard/manifest format this code reads and writes (docs/DATA_FORMAT.md).
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr const char* kManifestFile = "manifest.pb";

// "train-00003-of-00008.h5": shard `index` of `count` in `split`.
std::string shard_file_name(const std::string& split, int64_t index, int64_t count);

// Path of the manifest inside a dataset directory.
std::string manifest_path(const std::string& dir);

// Reads <dir>/manifest.pb and checks that it is self-consistent (supported version,
// known modality, positive shape and class count, one mean/std per image channel,
// plain shard file names). Throws im::Error with one line naming the directory.
proto::DatasetManifest read_manifest(const std::string& dir);

// Writes <dir>/manifest.pb atomically (tmp file, fsync, rename, fsync of the directory).
void write_manifest(const std::string& dir, const proto::DatasetManifest& manifest);

}  // namespace im::data
