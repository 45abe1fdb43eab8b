#include "data/manifest.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/fs_util.h"

namespace im::data {

std::string shard_file_name(const std::string& split, int64_t index, int64_t count) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "-%05lld-of-%05lld.h5", static_cast<long long>(index),
                static_cast<long long>(count));
  return split + buf;
}

std::string manifest_path(const std::string& dir) {
  return (std::filesystem::path(dir) / kManifestFile).string();
}

namespace {

// Checks the fields every reader relies on, so later code can trust them.
void validate(const std::string& dir, const proto::DatasetManifest& m) {
  const std::string where = "dataset directory '" + dir + "': manifest.pb";
  IM_CHECK(m.format_version() == kFormatVersion, where, " has format_version ", m.format_version(),
           ", this build reads only version ", kFormatVersion,
           " (convert the data again with this build)");
  IM_CHECK(m.modality() == "image" || m.modality() == "text", where, " has modality '",
           m.modality(), "', expected 'image' or 'text'");
  const size_t want_rank = m.modality() == "image" ? 3 : 1;
  IM_CHECK(static_cast<size_t>(m.sample_shape_size()) == want_rank, where,
           " has a sample_shape of ", m.sample_shape_size(), " dimensions, expected ", want_rank,
           " for modality '", m.modality(), "'");
  for (int64_t d : m.sample_shape())
    IM_CHECK(d > 0, where, " has a non-positive sample_shape entry ", d);
  IM_CHECK(m.num_classes() > 0, where, " has num_classes 0");
  IM_CHECK(m.class_names_size() == 0 || m.class_names_size() == static_cast<int>(m.num_classes()),
           where, " lists ", m.class_names_size(), " class names for ", m.num_classes(),
           " classes");
  if (m.modality() == "image") {
    const int64_t channels = m.sample_shape(0);
    IM_CHECK(m.channel_mean_size() == channels && m.channel_std_size() == channels, where, " has ",
             m.channel_mean_size(), " channel means and ", m.channel_std_size(),
             " channel stds, expected ", channels, " of each");
    for (float s : m.channel_std())
      IM_CHECK(s > 0.0f, where, " has a non-positive channel std ", s);
  }
  for (const proto::ShardInfo& s : m.shards()) {
    // Shard names are plain file names next to the manifest; nothing may point elsewhere.
    IM_CHECK(!s.file().empty() && s.file().find('/') == std::string::npos && s.file() != "." &&
                 s.file() != "..",
             where, " lists an invalid shard file name '", s.file(), "'");
    IM_CHECK(!s.split().empty(), where, " lists shard '", s.file(), "' without a split");
  }
}

}  // namespace

proto::DatasetManifest read_manifest(const std::string& dir) {
  const std::string path = manifest_path(dir);
  IM_CHECK(std::filesystem::is_regular_file(path), "dataset directory '", dir,
           "' has no manifest.pb (convert the data first: infomamba_dist data fashion-mnist --out ",
           dir, ")");
  std::ifstream in(path, std::ios::binary);
  IM_CHECK(in.good(), "dataset directory '", dir, "': cannot read manifest.pb");
  proto::DatasetManifest m;
  IM_CHECK(m.ParseFromIstream(&in), "dataset directory '", dir,
           "': manifest.pb is not a valid DatasetManifest (corrupt or not a manifest)");
  validate(dir, m);
  return m;
}

void write_manifest(const std::string& dir, const proto::DatasetManifest& manifest) {
  std::string bytes;
  IM_CHECK(manifest.SerializeToString(&bytes), "cannot serialise the manifest for '", dir, "'");
  write_file_atomic(manifest_path(dir), bytes);
}

}  // namespace im::data
