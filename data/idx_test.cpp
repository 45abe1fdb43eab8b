#include "data/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::idx_bytes;
using testing::TempDir;

TEST(IdxTest, ReadsPlainAndGzippedFilesAlike) {
  TempDir dir;
  const std::vector<uint8_t> px = testing::synthetic_images(3, 4, 5, 0);
  const std::vector<uint8_t> bytes = idx_bytes({3, 4, 5}, px);
  testing::write_bytes(dir / "plain", bytes);
  testing::write_gzip(dir / "zipped", bytes);  // no .gz suffix: detected by magic bytes
  for (const std::string name : {"plain", "zipped"}) {
    const IdxArray a = read_idx(dir / name, 3);
    EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 4, 5})) << name;
    EXPECT_EQ(a.data, px) << name;
  }
}

TEST(IdxTest, ReadsLabelsAndPairsThemWithImages) {
  TempDir dir;
  testing::write_gzip(dir / "img.gz", idx_bytes({4, 2, 3}, testing::synthetic_images(4, 2, 3, 1)));
  testing::write_bytes(dir / "lab", idx_bytes({4}, {3, 1, 4, 1}));
  const IdxSplit s = read_idx_split(dir / "img.gz", dir / "lab");
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 3);
  EXPECT_EQ(s.labels, (std::vector<uint8_t>{3, 1, 4, 1}));
  EXPECT_EQ(s.images.size(), 24u);
}

TEST(IdxTest, BadMagicNamesFileAndBothNumbers) {
  TempDir dir;
  testing::write_bytes(dir / "labels", idx_bytes({2}, {0, 1}));
  const std::string msg = error_of([&] { read_idx(dir / "labels", 3); });
  EXPECT_THAT(msg, HasSubstr(dir / "labels"));
  EXPECT_THAT(msg, HasSubstr("bad magic 0x00000801, expected 0x00000803"));
  testing::write_bytes(dir / "text", {'h', 'e', 'l', 'l', 'o', '\n'});
  EXPECT_THAT(error_of([&] { read_idx(dir / "text", 1); }), HasSubstr("bad magic 0x68656c6c"));
}

TEST(IdxTest, TruncatedDataIsReported) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_bytes({3, 4, 5}, testing::synthetic_images(3, 4, 5, 0));
  bytes.resize(bytes.size() - 7);
  testing::write_bytes(dir / "short", bytes);
  const std::string msg = error_of([&] { read_idx(dir / "short", 3); });
  EXPECT_THAT(msg, HasSubstr(dir / "short"));
  EXPECT_THAT(msg, HasSubstr("truncated (the header promises 60 data bytes, the file has 53)"));

  testing::write_bytes(dir / "header", {0, 0, 8, 3, 0, 0});
  EXPECT_THAT(error_of([&] { read_idx(dir / "header", 3); }), HasSubstr("truncated header"));
}

TEST(IdxTest, TrailingBytesAreReported) {
  TempDir dir;
  std::vector<uint8_t> bytes = idx_bytes({2}, {1, 2});
  bytes.push_back(9);
  testing::write_bytes(dir / "long", bytes);
  EXPECT_THAT(error_of([&] { read_idx(dir / "long", 1); }), HasSubstr("1 unexpected bytes"));
}

TEST(IdxTest, TruncatedGzipStreamIsReported) {
  TempDir dir;
  testing::write_gzip(dir / "full.gz",
                      idx_bytes({50, 8, 8}, testing::synthetic_images(50, 8, 8, 2)));
  std::vector<uint8_t> gz = testing::read_bytes(dir / "full.gz");
  gz.resize(gz.size() / 2);
  testing::write_bytes(dir / "cut.gz", gz);
  const std::string msg = error_of([&] { read_idx(dir / "cut.gz", 3); });
  EXPECT_THAT(msg, HasSubstr(dir / "cut.gz"));
  EXPECT_THAT(msg, HasSubstr("gzip data is corrupt or truncated"));
}

TEST(IdxTest, CountMismatchBetweenImagesAndLabels) {
  TempDir dir;
  testing::write_bytes(dir / "img", idx_bytes({3, 2, 2}, testing::synthetic_images(3, 2, 2, 0)));
  testing::write_bytes(dir / "lab", idx_bytes({2}, {0, 1}));
  const std::string msg = error_of([&] { read_idx_split(dir / "img", dir / "lab"); });
  EXPECT_THAT(msg, HasSubstr(dir / "img"));
  EXPECT_THAT(msg, HasSubstr(dir / "lab"));
  EXPECT_THAT(msg, HasSubstr("3 images but 2 labels"));
}

TEST(IdxTest, MissingFileIsNamed) {
  TempDir dir;
  const std::string msg = error_of([&] { read_idx(dir / "nope", 1); });
  EXPECT_THAT(msg, HasSubstr(dir / "nope"));
  EXPECT_THAT(msg, HasSubstr("cannot open"));
}

}  // namespace
}  // namespace im::data
