#include "data/convert_fashion_mnist.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/crc32c.h"
#include "data/dataset.h"
#include "data/manifest.h"
#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

TEST(ConvertTest, ShardSizesAreContiguousEvenAndNeverEmpty) {
  EXPECT_EQ(shard_sizes(10, 3), (std::vector<int64_t>{4, 3, 3}));
  EXPECT_EQ(shard_sizes(9, 3), (std::vector<int64_t>{3, 3, 3}));
  EXPECT_EQ(shard_sizes(2, 8), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(shard_sizes(60000, 8), std::vector<int64_t>(8, 7500));
}

TEST(ConvertTest, ChannelStatsMatchADirectComputation) {
  const std::vector<uint8_t> px = testing::synthetic_images(5, 3, 4, 0);
  std::vector<float> mean, std;
  channel_stats(px.data(), 5, 1, 12, mean, std);
  double sum = 0, sq = 0;
  for (uint8_t v : px) sum += v / 255.0;
  const double m = sum / px.size();
  for (uint8_t v : px) sq += (v / 255.0 - m) * (v / 255.0 - m);
  ASSERT_EQ(mean.size(), 1u);
  EXPECT_NEAR(mean[0], m, 1e-6);
  EXPECT_NEAR(std[0], std::sqrt(sq / px.size()), 1e-6);
}

TEST(ConvertTest, TinySyntheticSetEndToEnd) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 11, 5, 6, 7, /*gz=*/true);
  const ConvertSummary s = convert_idx_dataset(src.path(), out.path(), 3, "fashion-mnist");
  EXPECT_EQ(s.train_samples, 11);
  EXPECT_EQ(s.test_samples, 5);
  EXPECT_EQ(s.train_shards, 3);
  EXPECT_EQ(s.test_shards, 3);

  const proto::DatasetManifest m = read_manifest(out.path());
  EXPECT_EQ(m.name(), "fashion-mnist");
  EXPECT_EQ(m.modality(), "image");
  EXPECT_EQ(std::vector<int64_t>(m.sample_shape().begin(), m.sample_shape().end()),
            (std::vector<int64_t>{1, 6, 7}));
  ASSERT_EQ(m.class_names_size(), 10);
  EXPECT_EQ(m.class_names(0), "T-shirt/top");
  EXPECT_EQ(m.class_names(9), "Ankle boot");
  ASSERT_EQ(m.shards_size(), 6);
  const std::vector<uint64_t> counts{4, 4, 3, 2, 2, 1};
  for (int i = 0; i < 6; ++i) {
    const proto::ShardInfo& info = m.shards(i);
    EXPECT_EQ(info.file(), shard_file_name(i < 3 ? "train" : "test", i % 3, 3));
    EXPECT_EQ(info.num_samples(), counts[static_cast<size_t>(i)]) << info.file();
    EXPECT_EQ(info.crc32c(), crc32c_file(out / info.file()));
    EXPECT_EQ(info.size_bytes(), std::filesystem::file_size(out / info.file()));
  }

  // Every sample and label comes back in source order.
  for (const auto& [split, n, salt] : {std::tuple{"train", 11, 0u}, std::tuple{"test", 5, 1u}}) {
    const Dataset ds = Dataset::open(out.path(), split);
    ASSERT_EQ(ds.num_samples(), n);
    EXPECT_EQ(ds.sample_shape(), (Shape{1, 6, 7}));
    EXPECT_EQ(ds.num_classes(), 10);
    EXPECT_FLOAT_EQ(ds.channel_mean()[0], s.channel_mean[0]);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(ds.label(i), testing::synthetic_label(i, salt));
      const auto img = ds.image(i);
      for (int64_t y = 0; y < 6; ++y)
        for (int64_t x = 0; x < 7; ++x)
          ASSERT_EQ(img[y * 7 + x], testing::synthetic_pixel(i, y, x, salt)) << split << i;
    }
  }
}

TEST(ConvertTest, PlainFilesOtherNamesAndDeterministicBytes) {
  TempDir src, a, b;
  testing::write_synthetic_idx_set(src.path(), 4, 3, 2, 2, /*gz=*/false);
  convert_idx_dataset(src.path(), a.path(), 2, "mnist");
  convert_idx_dataset(src.path(), b.path(), 2, "mnist");
  const proto::DatasetManifest ma = read_manifest(a.path()), mb = read_manifest(b.path());
  EXPECT_EQ(ma.class_names(0), "0");
  EXPECT_EQ(ma.class_names(9), "9");
  ASSERT_EQ(ma.shards_size(), mb.shards_size());
  for (int i = 0; i < ma.shards_size(); ++i)
    EXPECT_EQ(ma.shards(i).crc32c(), mb.shards(i).crc32c()) << "conversion is not deterministic";
}

TEST(ConvertTest, ReconvertingReplacesTheManifest) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 6, 2, 2, 2, true);
  convert_idx_dataset(src.path(), out.path(), 3, "mnist");
  convert_idx_dataset(src.path(), out.path(), 2, "mnist");
  const proto::DatasetManifest m = read_manifest(out.path());
  EXPECT_EQ(m.shards(0).file(), "train-00000-of-00002.h5");
  EXPECT_EQ(Dataset::open(out.path(), "train").num_samples(), 6);
}

TEST(ConvertTest, MissingSourceFileIsNamedAndNothingIsWritten) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 4, 3, 2, 2, true);
  std::filesystem::remove(src / "t10k-labels-idx1-ubyte.gz");
  const std::string target = out / "fm";
  const std::string msg = error_of([&] { convert_idx_dataset(src.path(), target, 2, "mnist"); });
  EXPECT_THAT(msg, HasSubstr(std::string("source directory '") + src.path() +
                             "' has no t10k-labels-idx1-ubyte"));
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(ConvertTest, BadSourceLabelIsNamed) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 4, 3, 2, 2, false);
  testing::write_bytes(src / "train-labels-idx1-ubyte", testing::idx_bytes({4}, {1, 2, 10, 3}));
  const std::string msg = error_of([&] { convert_idx_dataset(src.path(), out.path(), 2, "x"); });
  EXPECT_THAT(msg, HasSubstr("train-labels-idx1-ubyte': label 10 at sample 2 is outside [0, 10)"));
}

TEST(ConvertTest, InterruptedConversionLeavesNoManifest) {
  TempDir src, out;
  testing::write_synthetic_idx_set(src.path(), 4, 3, 2, 2, false);
  convert_idx_dataset(src.path(), out.path(), 2, "x");
  ASSERT_TRUE(std::filesystem::exists(out / "manifest.pb"));
  // Make a shard path unwritable: a directory where the second test shard must go.
  std::filesystem::remove(out / "test-00001-of-00002.h5");
  std::filesystem::create_directory(out / "test-00001-of-00002.h5");
  const std::string msg = error_of([&] { convert_idx_dataset(src.path(), out.path(), 2, "x"); });
  EXPECT_THAT(msg, HasSubstr("test-00001-of-00002.h5"));
  EXPECT_FALSE(std::filesystem::exists(out / "manifest.pb"));
}

// The real data set, when the Debian package is installed.
TEST(ConvertTest, RealFashionMnist) {
  const std::string src = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::is_directory(src)) GTEST_SKIP() << src << " is not installed";
  TempDir out;
  const auto t0 = std::chrono::steady_clock::now();
  const ConvertSummary s = convert_idx_dataset(src, out.path(), 2, "fashion-mnist");
  const double convert_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(s.train_samples, 60000);
  EXPECT_EQ(s.test_samples, 10000);
  EXPECT_EQ(s.train_shards, 2);
  EXPECT_NEAR(s.channel_mean[0], 0.2860, 5e-4);
  EXPECT_NEAR(s.channel_std[0], 0.3530, 5e-4);
  EXPECT_LT(convert_s, 15.0);

  const Dataset train = Dataset::open(out.path(), "train");
  const Dataset test = Dataset::open(out.path(), "test");
  EXPECT_EQ(train.num_samples(), 60000);
  EXPECT_EQ(test.num_samples(), 10000);
  EXPECT_EQ(train.sample_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(train.class_names()[9], "Ankle boot");
  EXPECT_NEAR(train.channel_mean()[0], 0.2860, 5e-4);
  EXPECT_NEAR(train.channel_std()[0], 0.3530, 5e-4);
  // The first training image of Fashion-MNIST is an ankle boot (label 9).
  EXPECT_EQ(train.label(0), 9);
}

}  // namespace
}  // namespace im::data
