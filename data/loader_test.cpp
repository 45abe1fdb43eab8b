#include "data/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "data/convert_fashion_mnist.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "data/test_util.h"

namespace im::data {
namespace {

using testing::error_of;
using ::testing::HasSubstr;
using testing::TempDir;

constexpr int64_t kRows = 5, kCols = 6, kTrain = 37;

// What a test compares: a batch's contents and place in the stream.
struct Seen {
  std::vector<float> inputs;
  std::vector<int64_t> labels;
  int64_t epoch, index;
  bool operator==(const Seen&) const = default;
};

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_synthetic_idx_set(src_.path(), kTrain, 3, kRows, kCols, false);
    convert_idx_dataset(src_.path(), out_.path(), 3, "mnist");
    train_ = std::make_unique<Dataset>(Dataset::open(out_.path(), "train"));
  }
  // The stream of a loader over `epochs` epochs; an end of epoch appears as index -1.
  static std::vector<Seen> drain(Loader& loader, int epochs) {
    std::vector<Seen> out;
    for (int e = 0; e < epochs;) {
      std::optional<Batch> b = loader.next();
      if (!b) {
        out.push_back(Seen{{}, {}, loader.cursor().epoch, -1});
        ++e;
        continue;
      }
      out.push_back(Seen{b->inputs.to_vector<float>(), b->labels.to_vector<int64_t>(), b->epoch,
                         b->index_in_epoch});
    }
    return out;
  }
  LoaderOptions augmented(int64_t workers) const {
    LoaderOptions o;
    o.batch_size = 8;
    o.shuffle = true;
    o.seed = 1234;
    o.crop_pad = 2;
    o.flip = true;
    o.workers = workers;
    o.prefetch = 3;
    return o;
  }

  TempDir src_, out_;
  std::unique_ptr<Dataset> train_;
};

TEST_F(LoaderTest, NormalisedImagesAndInt64Labels) {
  LoaderOptions o;
  o.batch_size = 16;
  o.workers = 0;
  Loader loader(*train_, o);
  const double mean = train_->channel_mean()[0], std = train_->channel_std()[0];
  std::optional<Batch> b = loader.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->inputs.dtype(), DType::Float32);
  EXPECT_EQ(b->inputs.shape(), (Shape{16, 1, kRows, kCols}));
  EXPECT_EQ(b->labels.dtype(), DType::Int64);
  EXPECT_EQ(b->labels.shape(), (Shape{16}));
  const float* x = b->inputs.data<float>();
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(b->labels.data<int64_t>()[i], testing::synthetic_label(i, 0));
    for (int64_t y = 0; y < kRows; ++y)
      for (int64_t c = 0; c < kCols; ++c) {
        const double v = testing::synthetic_pixel(i, y, c, 0) / 255.0;
        ASSERT_NEAR(x[(i * kRows + y) * kCols + c], (v - mean) / std, 1e-5);
      }
  }
  // Batches of 16, 16, 5, then the end of the epoch.
  EXPECT_EQ(loader.next()->index_in_epoch, 1);
  EXPECT_EQ(loader.next()->inputs.size(0), 5);
  EXPECT_FALSE(loader.next().has_value());
  EXPECT_EQ(loader.cursor(), (SamplerCursor{1, 0}));
  EXPECT_EQ(loader.next()->epoch, 1);
}

TEST_F(LoaderTest, WithoutNormalisationPixelsAreScaledOnly) {
  LoaderOptions o;
  o.batch_size = 4;
  o.normalize = false;
  o.workers = 1;
  Loader loader(*train_, o);
  const Batch b = *loader.next();
  EXPECT_FLOAT_EQ(b.inputs.data<float>()[kCols + 2], testing::synthetic_pixel(0, 1, 2, 0) / 255.0f);
}

TEST_F(LoaderTest, AugmentationIsReproducibleAndIndependentOfThreads) {
  Loader a(*train_, augmented(0)), b(*train_, augmented(3));
  const std::vector<Seen> sa = drain(a, 3), sb = drain(b, 3);
  EXPECT_EQ(sa, sb);
  LoaderOptions other = augmented(2);
  other.seed = 1235;
  Loader c(*train_, other);
  EXPECT_NE(drain(c, 1)[0].inputs, sa[0].inputs);
}

TEST_F(LoaderTest, AugmentationIsACropOfThePaddedImageAndAFlip) {
  LoaderOptions o = augmented(0);
  o.normalize = false;
  o.shuffle = false;
  Loader loader(*train_, o);
  Collator reference(*train_, CollateOptions{false, 2, true, o.seed});
  std::set<std::tuple<int64_t, int64_t, bool>> kinds;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    while (std::optional<Batch> b = loader.next()) {
      for (int64_t k = 0; k < b->inputs.size(0); ++k) {
        const int64_t i = b->index_in_epoch * 8 + k;  // in order: sample index
        const Augmentation aug = reference.augmentation(epoch, i);
        ASSERT_GE(aug.dy, -2);
        ASSERT_LE(aug.dy, 2);
        ASSERT_GE(aug.dx, -2);
        ASSERT_LE(aug.dx, 2);
        kinds.insert({aug.dy, aug.dx, aug.flip});
        for (int64_t y = 0; y < kRows; ++y)
          for (int64_t x = 0; x < kCols; ++x) {
            const int64_t sy = y + aug.dy, sx = (aug.flip ? kCols - 1 - x : x) + aug.dx;
            const bool inside = sy >= 0 && sy < kRows && sx >= 0 && sx < kCols;
            const float want = inside ? testing::synthetic_pixel(i, sy, sx, 0) / 255.0f : 0.0f;
            ASSERT_EQ(b->inputs.data<float>()[(k * kRows + y) * kCols + x], want)
                << "epoch " << epoch << " sample " << i << " y " << y << " x " << x;
          }
      }
    }
  }
  // 111 draws over 50 kinds: the draws are not stuck.
  EXPECT_GT(kinds.size(), 25u);
}

TEST_F(LoaderTest, OrderIsPreservedWhenWorkersFinishOutOfOrder) {
  LoaderOptions o = augmented(3);
  // Early batches take longest, so later ones are ready first.
  o.on_batch = [](Batch& b) {
    std::this_thread::sleep_for(std::chrono::milliseconds(4 * (3 - b.index_in_epoch % 4)));
  };
  Loader threaded(*train_, o);
  Loader serial(*train_, augmented(0));
  EXPECT_EQ(drain(threaded, 2), drain(serial, 2));
}

TEST_F(LoaderTest, CursorRestoreContinuesTheSameStream) {
  Loader a(*train_, augmented(2));
  drain(a, 1);
  a.next();
  a.next();
  const SamplerCursor saved = a.cursor();
  EXPECT_EQ(saved, (SamplerCursor{1, 16}));
  const std::vector<Seen> rest_a = drain(a, 2);
  Loader b(*train_, augmented(3), saved);
  EXPECT_EQ(drain(b, 2), rest_a);
}

TEST_F(LoaderTest, EarlyDestructionDoesNotHang) {
  std::atomic<int> assembled{0};
  LoaderOptions o = augmented(3);
  o.prefetch = 2;
  o.on_batch = [&](Batch&) {
    ++assembled;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  const auto t0 = std::chrono::steady_clock::now();
  { Loader never_used(*train_, o); }
  {
    Loader loader(*train_, o);
    ASSERT_TRUE(loader.next().has_value());
    // The queue is full now; workers wait for room when the loader goes.
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 2.0);
  // The window bounds the work: never more than `prefetch` slots ahead of the consumer.
  EXPECT_LE(assembled.load(), 2 + 3);
}

TEST_F(LoaderTest, WorkerExceptionReachesTheConsumer) {
  LoaderOptions o = augmented(3);
  o.on_batch = [](Batch& b) {
    if (b.epoch == 0 && b.index_in_epoch == 2) throw im::Error("pinned memory exhausted");
  };
  Loader loader(*train_, o);
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_THAT(error_of([&] { loader.next(); }), HasSubstr("pinned memory exhausted"));
  EXPECT_THAT(error_of([&] { loader.next(); }), HasSubstr("pinned memory exhausted"));
  EXPECT_EQ(loader.cursor(), (SamplerCursor{0, 16}));
}

TEST_F(LoaderTest, BadOptionsAreRefused) {
  LoaderOptions o;
  o.prefetch = 0;
  EXPECT_THAT(error_of([&] { Loader(*train_, o); }), HasSubstr("prefetch must be >= 1"));
  o = LoaderOptions{};
  o.crop_pad = 5;
  EXPECT_THAT(error_of([&] { Loader(*train_, o); }),
              HasSubstr("augment_crop_pad 5 is not smaller than the 5x6 images"));
  o = LoaderOptions{};
  o.batch_size = 0;
  EXPECT_THAT(error_of([&] { Loader(*train_, o); }), HasSubstr("batch size must be positive"));
}

TEST_F(LoaderTest, OptionsFromTheRunConfig) {
  DataConfig cfg;
  cfg.augment_crop_pad = 2;
  cfg.augment_flip = true;
  cfg.workers = 3;
  cfg.prefetch = 5;
  cfg.normalize = false;
  const LoaderOptions t = LoaderOptions::for_training(cfg, 32, 9);
  EXPECT_TRUE(t.shuffle);
  EXPECT_EQ(t.crop_pad, 2);
  EXPECT_TRUE(t.flip);
  EXPECT_EQ(t.seed, 9u);
  EXPECT_EQ(t.workers, 3);
  EXPECT_EQ(t.prefetch, 5);
  EXPECT_FALSE(t.normalize);
  const LoaderOptions e = LoaderOptions::for_evaluation(cfg, 32);
  EXPECT_FALSE(e.shuffle);
  EXPECT_EQ(e.crop_pad, 0);
  EXPECT_FALSE(e.flip);
  EXPECT_FALSE(e.drop_last);
}

TEST(LoaderTextTest, TokensBecomeInt64) {
  TempDir dir;
  const int64_t n = 5, len = 4;
  std::vector<int32_t> tokens(n * len), labels{0, 1, 2, 1, 0};
  for (int64_t i = 0; i < n * len; ++i) tokens[i] = static_cast<int32_t>(1000 + i);
  proto::DatasetManifest m;
  m.set_format_version(kFormatVersion);
  m.set_modality("text");
  m.add_sample_shape(len);
  m.set_num_classes(3);
  *m.add_shards() =
      write_text_shard(dir / shard_file_name("train", 0, 1), ShardHeader{"train", {len}, 3},
                       tokens.data(), labels.data(), n);
  write_manifest(dir.path(), m);
  const Dataset ds = Dataset::open(dir.path(), "train");
  LoaderOptions o;
  o.batch_size = 3;
  Loader loader(ds, o);
  const Batch b = *loader.next();
  EXPECT_EQ(b.inputs.dtype(), DType::Int64);
  EXPECT_EQ(b.inputs.shape(), (Shape{3, len}));
  EXPECT_EQ(b.inputs.to_vector<int64_t>()[len + 1], 1000 + len + 1);
  EXPECT_EQ(b.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
  o.flip = true;
  EXPECT_THAT(error_of([&] { Loader(ds, o); }), HasSubstr("augmentation apply to images only"));
}

// The real data set: a shuffled, augmented epoch at batch 64 must be far faster than a
// training step (~0.3 s per batch on CPU).
TEST(LoaderSpeedTest, FashionMnistEpochKeepsUp) {
  const std::string src = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::is_directory(src)) GTEST_SKIP() << src << " is not installed";
  TempDir out;
  convert_idx_dataset(src, out.path(), 4, "fashion-mnist");
  const Dataset ds = Dataset::open(out.path(), "train");
  DataConfig cfg;
  cfg.augment_crop_pad = 2;
  cfg.augment_flip = true;
  Loader loader(ds, LoaderOptions::for_training(cfg, 64, 1));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t batches = 0, samples = 0;
  while (std::optional<Batch> b = loader.next()) {
    ++batches;
    samples += b->inputs.size(0);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Shard-stratified training order: 8 shards of 7500 in bands of 8 columns fill 937 full
  // batches (the 4 samples per shard left over are drawn in other epochs).
  EXPECT_EQ(batches, 937);
  EXPECT_EQ(samples, 937 * 64);
  EXPECT_LT(s / batches, 0.01) << "seconds per batch";
  std::printf("loader: %lld batches of 64 in %.2f s (%.0f samples/s)\n",
              static_cast<long long>(batches), s, samples / s);
}

}  // namespace
}  // namespace im::data
