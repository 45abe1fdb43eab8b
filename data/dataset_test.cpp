#include "data/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "data/convert_fashion_mnist.h"
#include "data/crc32c.h"
#include "data/hdf5_util.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

constexpr int64_t kRows = 3, kCols = 4;

// A converted synthetic set: train 10 samples in shards of 5, test 4 in 2 and 2.
class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_synthetic_idx_set(src_.path(), 10, 4, kRows, kCols, true);
    convert_idx_dataset(src_.path(), out_.path(), 2, "fashion-mnist");
  }
  std::string shard(const std::string& split, int i) const {
    return out_ / shard_file_name(split, i, 2);
  }
  // Rewrites the manifest after `edit` (parsed without validation: an earlier edit
  // may have made it invalid on purpose).
  template <typename F>
  void edit_manifest(F&& edit) {
    proto::DatasetManifest m;
    const std::vector<uint8_t> bytes = testing::read_bytes(out_ / "manifest.pb");
    ASSERT_TRUE(m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())));
    edit(m);
    write_manifest(out_.path(), m);
  }
  // Points manifest entry `index` at the current bytes of its file (only the file's
  // contents, not its checksum, are then wrong).
  void refresh_checksum(int index) {
    edit_manifest([&](proto::DatasetManifest& m) {
      proto::ShardInfo* s = m.mutable_shards(index);
      s->set_crc32c(crc32c_file(out_ / s->file()));
      s->set_size_bytes(std::filesystem::file_size(out_ / s->file()));
    });
  }
  std::string open_error(const std::string& split = "train") {
    return error_of([&] { Dataset::open(out_.path(), split); });
  }

  TempDir src_, out_;
};

TEST_F(DatasetTest, OpensAndGivesRandomAccess) {
  const Dataset ds = Dataset::open(out_.path(), "train");
  EXPECT_EQ(ds.num_samples(), 10);
  EXPECT_EQ(ds.sample_shape(), (Shape{1, kRows, kCols}));
  EXPECT_EQ(ds.num_classes(), 10);
  EXPECT_EQ(ds.modality(), "image");
  EXPECT_EQ(ds.name(), "fashion-mnist");
  ASSERT_EQ(ds.channel_mean().size(), 1u);
  EXPECT_GT(ds.channel_std()[0], 0.0f);
  EXPECT_EQ(ds.class_names().size(), 10u);
  EXPECT_EQ(ds.inputs().shape(), (Shape{10, 1, kRows, kCols}));
  for (int64_t i : {0, 4, 5, 9}) {  // both shards, first and last samples
    const Sample s = ds.sample(i);
    EXPECT_EQ(s.input.dtype(), DType::UInt8);
    EXPECT_EQ(s.input.shape(), (Shape{1, kRows, kCols}));
    EXPECT_EQ(s.label, testing::synthetic_label(i, 0));
    const std::vector<uint8_t> px = s.input.contiguous().to_vector<uint8_t>();
    EXPECT_EQ(px[static_cast<size_t>(2 * kCols + 1)], testing::synthetic_pixel(i, 2, 1, 0));
  }
  EXPECT_THAT(error_of([&] { ds.sample(10); }), HasSubstr("sample index 10 is outside [0, 10)"));
  EXPECT_THAT(error_of([&] { ds.tokens(0); }), HasSubstr("tokens() on an image dataset"));
}

TEST_F(DatasetTest, SubsetKeepsTheFirstSamples) {
  const Dataset ds = Dataset::open(out_.path(), "train", 7);
  EXPECT_EQ(ds.num_samples(), 7);
  EXPECT_EQ(ds.labels().shape(), (Shape{7}));
  EXPECT_EQ(ds.label(6), testing::synthetic_label(6, 0));
  EXPECT_THAT(error_of([&] { Dataset::open(out_.path(), "train", 11); }),
              HasSubstr("subset 11 of split 'train' is outside [0, 10]"));
}

// A data-parallel rank reads only its shards: samples of the others are not in memory
// (asking for one names the file), and a damaged shard it does not read is not its concern.
TEST_F(DatasetTest, ReadsOnlyTheShardsAsked) {
  const Dataset all = Dataset::open(out_.path(), "train");
  EXPECT_EQ(all.shards_read(), 2);
  EXPECT_EQ(Dataset::shard_sizes(out_.path(), "train"), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(Dataset::shard_sizes(out_.path(), "train", 7), (std::vector<int64_t>{5, 2}));
  auto bytes = testing::read_bytes(shard("train", 0));
  bytes[bytes.size() / 2] ^= 0x08;
  testing::write_bytes(shard("train", 0), bytes);
  const Dataset second = Dataset::open(out_.path(), "train", 0, {1});
  EXPECT_EQ(second.num_samples(), 10);
  EXPECT_EQ(second.shards_read(), 1);
  EXPECT_FALSE(second.shard_loaded(0));
  for (int64_t i : {5, 7, 9}) {
    EXPECT_EQ(second.label(i), all.label(i));
    const auto a = second.image(i), b = all.image(i);
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << i;
  }
  EXPECT_THAT(error_of([&] { second.label(2); }),
              HasSubstr("sample 2 is in shard " + shard_file_name("train", 0, 2) +
                        ", which this process did not read"));
  EXPECT_THAT(error_of([&] { second.inputs(); }), HasSubstr("read 1 of 2"));
  EXPECT_THAT(error_of([&] { Dataset::open(out_.path(), "train", 0, {0}); }),
              HasSubstr(shard_file_name("train", 0, 2)));
  EXPECT_THAT(error_of([&] { Dataset::open(out_.path(), "train", 0, {2}); }),
              HasSubstr("has 2 shards, no shard 2"));
}

TEST_F(DatasetTest, UnknownSplitListsTheKnownOnes) {
  EXPECT_THAT(open_error("valid"),
              HasSubstr("manifest.pb lists no shards for split 'valid' (it has: test, train)"));
}

TEST_F(DatasetTest, MissingManifest) {
  std::filesystem::remove(out_ / "manifest.pb");
  EXPECT_THAT(open_error(), HasSubstr(std::string("dataset directory '") + out_.path() +
                                      "' has no manifest.pb (convert the data first: "
                                      "infomamba_dist data fashion-mnist --out " +
                                      out_.path() + ")"));
}

TEST_F(DatasetTest, MissingShard) {
  std::filesystem::remove(shard("train", 1));
  EXPECT_THAT(open_error(),
              HasSubstr(std::string("shard ") + shard("train", 1) + ": file is missing"));
  // The other split does not need that file.
  EXPECT_EQ(Dataset::open(out_.path(), "test").num_samples(), 4);
}

TEST_F(DatasetTest, CorruptShard) {
  const proto::DatasetManifest m = read_manifest(out_.path());
  std::vector<uint8_t> bytes = testing::read_bytes(shard("train", 0));
  bytes[bytes.size() / 2] ^= 0x40;
  testing::write_bytes(shard("train", 0), bytes);
  char want[16];
  std::snprintf(want, sizeof(want), "0x%08x", m.shards(0).crc32c());
  const std::string msg = open_error();
  EXPECT_THAT(msg, HasSubstr(std::string("shard ") + shard("train", 0) +
                             ": checksum mismatch (manifest " + want + ", file 0x"));
  EXPECT_THAT(msg, HasSubstr("the file is corrupt or truncated"));
}

TEST_F(DatasetTest, TruncatedShard) {
  const uint64_t size = std::filesystem::file_size(shard("test", 1));
  std::filesystem::resize_file(shard("test", 1), size / 2);
  EXPECT_THAT(open_error("test"),
              HasSubstr(std::string("shard ") + shard("test", 1) + ": size " +
                        std::to_string(size / 2) + " bytes, manifest says " + std::to_string(size) +
                        " — the file is truncated or was replaced"));
}

TEST_F(DatasetTest, LabelOutOfRange) {
  // A well-formed shard whose manifest entry is right, but with one bad label.
  std::vector<uint8_t> px = testing::synthetic_images(5, kRows, kCols, 0);
  std::vector<int32_t> labels{1, 2, 3, 12, 4};
  const proto::ShardInfo info = write_image_shard(
      shard("train", 1), ShardHeader{"train", {1, kRows, kCols}, 10}, px.data(), labels.data(), 5);
  edit_manifest([&](proto::DatasetManifest& m) { *m.mutable_shards(1) = info; });
  EXPECT_THAT(open_error(), HasSubstr(std::string("shard ") + shard("train", 1) +
                                      ": label 12 at sample 3 is outside [0, 10)"));
}

TEST_F(DatasetTest, SampleCountMismatch) {
  edit_manifest([](proto::DatasetManifest& m) { m.mutable_shards(1)->set_num_samples(6); });
  EXPECT_THAT(open_error(), HasSubstr(std::string("shard ") + shard("train", 1) +
                                      ": dataset 'inputs' holds 5 samples, manifest says 6"));
}

TEST_F(DatasetTest, NotAnHdf5FileAndHdf5StaysQuiet) {
  testing::write_bytes(shard("train", 0), std::vector<uint8_t>(4096, 'x'));
  refresh_checksum(0);
  ::testing::internal::CaptureStderr();
  const std::string msg = open_error();
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(msg, HasSubstr(std::string("shard ") + shard("train", 0) + ": HDF5 cannot open it"));
  EXPECT_EQ(stderr_text, "") << "HDF5 printed its error stack";
}

TEST_F(DatasetTest, ShardDisagreeingWithManifest) {
  edit_manifest([](proto::DatasetManifest& m) { m.mutable_shards(0)->set_split("test"); });
  EXPECT_THAT(open_error("test"), HasSubstr(std::string("shard ") + shard("train", 0) +
                                            ": split 'train', manifest says 'test'"));

  edit_manifest([](proto::DatasetManifest& m) {
    m.mutable_shards(0)->set_split("train");
    m.set_num_classes(11);
    m.add_class_names(std::string(5, 'x'));
  });
  EXPECT_THAT(open_error(), HasSubstr(": num_classes 10, manifest says 11"));

  edit_manifest([](proto::DatasetManifest& m) {
    m.set_num_classes(10);
    m.mutable_class_names()->RemoveLast();
    m.set_sample_shape(1, kCols);
    m.set_sample_shape(2, kRows);
  });
  EXPECT_THAT(open_error(), HasSubstr(": sample_shape [1, 3, 4], manifest says [1, 4, 3]"));
}

TEST_F(DatasetTest, TextShardInAnImageDataset) {
  std::vector<int32_t> tokens(5 * 12, 1), labels(5, 0);
  write_text_shard(shard("train", 1), ShardHeader{"train", {12}, 10}, tokens.data(), labels.data(),
                   5);
  refresh_checksum(1);
  EXPECT_THAT(open_error(), HasSubstr(std::string("shard ") + shard("train", 1) +
                                      ": modality 'text', manifest says 'image'"));
}

TEST_F(DatasetTest, WrongInputDtype) {
  // Our attributes, but float pixels: written with raw HDF5 calls.
  h5::quiet_hdf5();
  {
    h5::Handle f = h5::file_handle(
        H5Fcreate(shard("train", 1).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_TRUE(f.valid());
    const hsize_t dims[4] = {5, 1, kRows, kCols}, ldims[1] = {5};
    std::vector<float> px(5 * kRows * kCols, 0.5f);
    std::vector<int32_t> labels(5, 1);
    h5::Handle s = h5::space_handle(H5Screate_simple(4, dims, nullptr));
    h5::Handle d = h5::dataset_handle(H5Dcreate2(f.get(), "inputs", H5T_IEEE_F32LE, s.get(),
                                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_GE(H5Dwrite(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, px.data()), 0);
    h5::Handle ls = h5::space_handle(H5Screate_simple(1, ldims, nullptr));
    h5::Handle ld = h5::dataset_handle(H5Dcreate2(f.get(), "labels", H5T_STD_I32LE, ls.get(),
                                                  H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_GE(H5Dwrite(ld.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data()),
              0);
    ASSERT_TRUE(h5::write_int_attr(f.get(), "format_version", 1));
    ASSERT_TRUE(h5::write_string_attr(f.get(), "modality", "image"));
    ASSERT_TRUE(h5::write_int_array_attr(f.get(), "sample_shape", {1, kRows, kCols}));
    ASSERT_TRUE(h5::write_int_attr(f.get(), "num_classes", 10));
    ASSERT_TRUE(h5::write_string_attr(f.get(), "split", "train"));
    ASSERT_TRUE(h5::write_int_attr(f.get(), "num_samples", 5));
  }
  refresh_checksum(1);
  EXPECT_THAT(open_error(), HasSubstr(std::string("shard ") + shard("train", 1) +
                                      ": dataset 'inputs' has type float32, expected uint8"));
}

TEST_F(DatasetTest, MissingAttributeIsNamed) {
  h5::quiet_hdf5();
  {
    h5::Handle f = h5::file_handle(H5Fopen(shard("train", 0).c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f.valid());
    ASSERT_GE(H5Adelete(f.get(), "modality"), 0);
  }
  refresh_checksum(0);
  EXPECT_THAT(open_error(), HasSubstr(std::string("shard ") + shard("train", 0) +
                                      ": attribute 'modality' is missing"));
}

// h5py writes string attributes as variable-length UTF-8; shards written that way open.
TEST_F(DatasetTest, VariableLengthUtf8StringAttributesAreAccepted) {
  h5::quiet_hdf5();
  {
    h5::Handle f = h5::file_handle(H5Fopen(shard("train", 0).c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(f.valid());
    for (const char* name : {"modality", "split"}) {
      std::string problem;
      const std::string value = *h5::read_string_attr(f.get(), name, problem);
      ASSERT_GE(H5Adelete(f.get(), name), 0);
      h5::Handle type = h5::type_handle(H5Tcopy(H5T_C_S1));
      ASSERT_GE(H5Tset_size(type.get(), H5T_VARIABLE), 0);
      ASSERT_GE(H5Tset_cset(type.get(), H5T_CSET_UTF8), 0);
      h5::Handle space = h5::space_handle(H5Screate(H5S_SCALAR));
      h5::Handle attr = h5::attr_handle(
          H5Acreate2(f.get(), name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
      const char* ptr = value.c_str();
      ASSERT_GE(H5Awrite(attr.get(), type.get(), &ptr), 0);
    }
  }
  refresh_checksum(0);
  EXPECT_EQ(Dataset::open(out_.path(), "train").num_samples(), 10);
}

// Text datasets: int32 tokens [N, L].
TEST(DatasetTextTest, TextShardsRoundTrip) {
  TempDir dir;
  const int64_t n = 6, len = 5;
  std::vector<int32_t> tokens(n * len), labels(n);
  for (int64_t i = 0; i < n * len; ++i) tokens[i] = static_cast<int32_t>(i * 7 % 1000);
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 2);
  proto::DatasetManifest m;
  m.set_format_version(kFormatVersion);
  m.set_name("tiny-text");
  m.set_modality("text");
  m.add_sample_shape(len);
  m.set_num_classes(2);
  for (int s = 0; s < 2; ++s) {
    *m.add_shards() =
        write_text_shard(dir / shard_file_name("train", s, 2), ShardHeader{"train", {len}, 2},
                         tokens.data() + s * 3 * len, labels.data() + s * 3, 3);
  }
  write_manifest(dir.path(), m);
  const Dataset ds = Dataset::open(dir.path(), "train");
  EXPECT_FALSE(ds.is_image());
  EXPECT_EQ(ds.num_samples(), n);
  EXPECT_TRUE(ds.channel_mean().empty());
  for (int64_t i = 0; i < n; ++i) {
    const auto t = ds.tokens(i);
    EXPECT_EQ(std::vector<int32_t>(t.begin(), t.end()),
              std::vector<int32_t>(tokens.begin() + i * len, tokens.begin() + (i + 1) * len));
    EXPECT_EQ(ds.label(i), labels[i]);
  }
  const Sample s = ds.sample(4);
  EXPECT_EQ(s.input.dtype(), DType::Int32);
  EXPECT_EQ(s.input.shape(), (Shape{len}));
}

}  // namespace
}  // namespace im::data
