// Durability helpers for the converters: a conversion is complete only once every
// shard and then the manifest are on disk, so we fsync files and their directory.
#pragma once

#include <string>

namespace im::data {

// fsyncs a file or a directory; throws im::Error naming the path when that fails.
void fsync_path(const std::string& path);

// Writes `bytes` to `path` atomically: `path`.tmp is written and fsynced, renamed over
// `path`, and the directory is fsynced. Readers see the old file or the new, never half.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace im::data
