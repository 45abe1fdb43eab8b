#include "data/convert_fashion_mnist.h"

#include <array>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "data/fs_util.h"
#include "data/idx.h"
#include "data/manifest.h"
#include "data/shard_writer.h"

namespace im::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kNumClasses = 10;
constexpr int64_t kMaxShards = 99999;  // shard names carry five digits

const std::array<const char*, kNumClasses> kFashionClassNames = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// `base` or `base`.gz in `dir`, preferring the compressed file as distributed.
std::string find_idx_file(const std::string& dir, const std::string& base) {
  for (const std::string& name : {base + ".gz", base}) {
    const fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  IM_CHECK(false, "source directory '", dir, "' has no ", base, "[.gz]");
  return {};
}

void check_labels(const IdxSplit& split, const std::string& labels_path) {
  for (int64_t i = 0; i < split.count; ++i) {
    const int label = split.labels[static_cast<size_t>(i)];
    IM_CHECK(label < kNumClasses, "IDX file '", labels_path, "': label ", label, " at sample ", i,
             " is outside [0, ", kNumClasses, ")");
  }
}

// Writes one split's shards and adds their entries to the manifest.
int64_t write_split(const IdxSplit& data, const std::string& split, const std::string& out_dir,
                    int64_t num_shards, proto::DatasetManifest& manifest) {
  const std::vector<int64_t> sizes = shard_sizes(data.count, num_shards);
  const int64_t pixels = data.rows * data.cols;
  const ShardHeader header{split, {1, data.rows, data.cols}, kNumClasses};
  int64_t start = 0;
  for (size_t s = 0; s < sizes.size(); ++s) {
    const int64_t n = sizes[s];
    std::vector<int32_t> labels(data.labels.begin() + start, data.labels.begin() + start + n);
    const std::string path =
        (fs::path(out_dir) /
         shard_file_name(split, static_cast<int64_t>(s), static_cast<int64_t>(sizes.size())))
            .string();
    *manifest.add_shards() =
        write_image_shard(path, header, data.images.data() + start * pixels, labels.data(), n);
    start += n;
  }
  return static_cast<int64_t>(sizes.size());
}

}  // namespace

std::vector<int64_t> shard_sizes(int64_t n, int64_t num_shards) {
  IM_CHECK(n > 0 && num_shards > 0, "shard_sizes: need samples and shards, got ", n, " and ",
           num_shards);
  const int64_t k = std::min(n, num_shards);
  std::vector<int64_t> sizes(static_cast<size_t>(k), n / k);
  for (int64_t i = 0; i < n % k; ++i) ++sizes[static_cast<size_t>(i)];
  return sizes;
}

void channel_stats(const uint8_t* images, int64_t count, int64_t channels, int64_t pixels,
                   std::vector<float>& mean, std::vector<float>& std) {
  // Exact: a histogram of the 256 values per channel, then sums in double.
  std::vector<std::array<uint64_t, 256>> hist(static_cast<size_t>(channels));
  for (auto& h : hist) h.fill(0);
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t c = 0; c < channels; ++c) {
      const uint8_t* p = images + (i * channels + c) * pixels;
      auto& h = hist[static_cast<size_t>(c)];
      for (int64_t j = 0; j < pixels; ++j) ++h[p[j]];
    }
  }
  mean.assign(static_cast<size_t>(channels), 0.0f);
  std.assign(static_cast<size_t>(channels), 0.0f);
  const double n = static_cast<double>(count) * static_cast<double>(pixels);
  for (size_t c = 0; c < hist.size(); ++c) {
    double sum = 0.0;
    for (int v = 0; v < 256; ++v) sum += static_cast<double>(hist[c][v]) * (v / 255.0);
    const double m = sum / n;
    double var = 0.0;
    for (int v = 0; v < 256; ++v) {
      const double d = v / 255.0 - m;
      var += static_cast<double>(hist[c][v]) * d * d;
    }
    mean[c] = static_cast<float>(m);
    std[c] = static_cast<float>(std::sqrt(var / n));
  }
}

ConvertSummary convert_idx_dataset(const std::string& src_dir, const std::string& out_dir,
                                   int64_t num_shards, const std::string& name) {
  IM_CHECK(num_shards >= 1 && num_shards <= kMaxShards, "--shards must be in [1, ", kMaxShards,
           "], got ", num_shards);
  IM_CHECK(!name.empty(), "the dataset needs a name");
  std::error_code ec;
  IM_CHECK(fs::is_directory(src_dir, ec), "source directory '", src_dir, "' does not exist");

  // Read and check all input before touching the output directory.
  const std::string train_labels = find_idx_file(src_dir, "train-labels-idx1-ubyte");
  const std::string test_labels = find_idx_file(src_dir, "t10k-labels-idx1-ubyte");
  const IdxSplit train =
      read_idx_split(find_idx_file(src_dir, "train-images-idx3-ubyte"), train_labels);
  const IdxSplit test =
      read_idx_split(find_idx_file(src_dir, "t10k-images-idx3-ubyte"), test_labels);
  IM_CHECK(train.count > 0 && test.count > 0, "source directory '", src_dir,
           "': a split has no samples (train ", train.count, ", test ", test.count, ")");
  IM_CHECK(train.rows == test.rows && train.cols == test.cols, "source directory '", src_dir,
           "': train images are ", train.rows, "x", train.cols, " but test images are ", test.rows,
           "x", test.cols);
  check_labels(train, train_labels);
  check_labels(test, test_labels);

  fs::create_directories(out_dir, ec);
  IM_CHECK(!ec, "cannot create output directory '", out_dir, "': ", ec.message());
  // An old manifest would vouch for shards we are about to overwrite: drop it first.
  const std::string manifest_file = manifest_path(out_dir);
  fs::remove(manifest_file, ec);
  IM_CHECK(!ec, "cannot remove the old '", manifest_file, "': ", ec.message());
  fsync_path(out_dir);

  proto::DatasetManifest manifest;
  manifest.set_format_version(kFormatVersion);
  manifest.set_name(name);
  manifest.set_modality("image");
  manifest.add_sample_shape(1);
  manifest.add_sample_shape(train.rows);
  manifest.add_sample_shape(train.cols);
  manifest.set_num_classes(kNumClasses);
  manifest.set_source(fs::absolute(src_dir).lexically_normal().string());
  for (int64_t c = 0; c < kNumClasses; ++c) {
    manifest.add_class_names(name == "fashion-mnist" ? kFashionClassNames[c] : std::to_string(c));
  }

  ConvertSummary summary;
  channel_stats(train.images.data(), train.count, 1, train.rows * train.cols, summary.channel_mean,
                summary.channel_std);
  IM_CHECK(summary.channel_std[0] > 0.0f, "source directory '", src_dir,
           "': every training pixel has the same value, so the std is 0");
  for (float m : summary.channel_mean) manifest.add_channel_mean(m);
  for (float s : summary.channel_std) manifest.add_channel_std(s);

  summary.train_shards = write_split(train, "train", out_dir, num_shards, manifest);
  summary.test_shards = write_split(test, "test", out_dir, num_shards, manifest);
  summary.train_samples = train.count;
  summary.test_samples = test.count;
  write_manifest(out_dir, manifest);
  return summary;
}

}  // namespace im::data
