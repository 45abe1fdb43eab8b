#include "data/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

proto::DatasetManifest valid_manifest() {
  proto::DatasetManifest m;
  m.set_format_version(kFormatVersion);
  m.set_name("tiny");
  m.set_modality("image");
  for (int64_t d : {1, 4, 4}) m.add_sample_shape(d);
  m.set_num_classes(3);
  m.add_channel_mean(0.5f);
  m.add_channel_std(0.25f);
  proto::ShardInfo* s = m.add_shards();
  s->set_file(shard_file_name("train", 0, 1));
  s->set_split("train");
  s->set_num_samples(7);
  return m;
}

TEST(ManifestTest, ShardFileNames) {
  EXPECT_EQ(shard_file_name("train", 3, 8), "train-00003-of-00008.h5");
  EXPECT_EQ(shard_file_name("test", 0, 12345), "test-00000-of-12345.h5");
}

TEST(ManifestTest, WriteThenReadRoundTripsAndLeavesNoTempFile) {
  TempDir dir;
  const proto::DatasetManifest m = valid_manifest();
  write_manifest(dir.path(), m);
  EXPECT_FALSE(std::filesystem::exists(dir / "manifest.pb.tmp"));
  const proto::DatasetManifest back = read_manifest(dir.path());
  EXPECT_EQ(back.SerializeAsString(), m.SerializeAsString());
}

TEST(ManifestTest, MissingManifestSaysHowToConvert) {
  TempDir dir;
  const std::string msg = error_of([&] { read_manifest(dir.path()); });
  EXPECT_THAT(msg,
              HasSubstr(std::string("dataset directory '") + dir.path() + "' has no manifest.pb"));
  EXPECT_THAT(msg, HasSubstr(std::string("infomamba_dist data fashion-mnist --out ") + dir.path()));
}

TEST(ManifestTest, GarbageIsNotAManifest) {
  TempDir dir;
  testing::write_bytes(dir / "manifest.pb", {0xff, 0xff, 0xff, 0xff, 0x0f});
  EXPECT_THAT(error_of([&] { read_manifest(dir.path()); }),
              HasSubstr("manifest.pb is not a valid DatasetManifest"));
}

TEST(ManifestTest, SelfInconsistentManifestsAreRefused) {
  struct Case {
    void (*edit)(proto::DatasetManifest&);
    const char* expected;
  };
  const Case cases[] = {
      {[](proto::DatasetManifest& m) { m.set_format_version(2); },
       "has format_version 2, this build reads only version 1"},
      {[](proto::DatasetManifest& m) { m.set_modality("audio"); }, "has modality 'audio'"},
      {[](proto::DatasetManifest& m) { m.add_sample_shape(2); },
       "sample_shape of 4 dimensions, expected 3"},
      {[](proto::DatasetManifest& m) { m.set_sample_shape(1, 0); }, "non-positive sample_shape"},
      {[](proto::DatasetManifest& m) { m.set_num_classes(0); }, "num_classes 0"},
      {[](proto::DatasetManifest& m) { m.add_channel_mean(0.1f); },
       "2 channel means and 1 channel stds, expected 1"},
      {[](proto::DatasetManifest& m) { m.set_channel_std(0, 0.0f); }, "non-positive channel std"},
      {[](proto::DatasetManifest& m) { m.add_class_names(std::string(1, 'a')); },
       "1 class names for 3 classes"},
      {[](proto::DatasetManifest& m) { m.mutable_shards(0)->set_file("../x.h5"); },
       "invalid shard file name '../x.h5'"},
  };
  for (const Case& c : cases) {
    TempDir dir;
    proto::DatasetManifest m = valid_manifest();
    c.edit(m);
    write_manifest(dir.path(), m);
    const std::string msg = error_of([&] { read_manifest(dir.path()); });
    EXPECT_THAT(msg, HasSubstr(c.expected));
    EXPECT_THAT(msg, HasSubstr(dir.path()));
  }
}

}  // namespace
}  // namespace im::data
