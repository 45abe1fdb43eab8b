#include "data/dataset.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "data/manifest.h"
#include "data/shard_reader.h"

namespace im::data {

namespace {

// The split's shards in manifest order; throws naming the splits there are.
std::vector<const proto::ShardInfo*> split_shards(const proto::DatasetManifest& m,
                                                  const std::string& dir,
                                                  const std::string& split) {
  std::vector<const proto::ShardInfo*> shards;
  std::set<std::string> splits;
  for (const proto::ShardInfo& s : m.shards()) {
    splits.insert(s.split());
    if (s.split() == split) shards.push_back(&s);
  }
  if (shards.empty()) {
    std::string have;
    for (const std::string& s : splits) have += (have.empty() ? "" : ", ") + s;
    IM_CHECK(false, "dataset directory '", dir, "': manifest.pb lists no shards for split '", split,
             "' (it has: ", have.empty() ? "none" : have, ")");
  }
  return shards;
}

// Samples per shard once only the first `subset` samples (0: all) are kept.
std::vector<int64_t> sizes_after_subset(const std::vector<const proto::ShardInfo*>& shards,
                                        const std::string& dir, const std::string& split,
                                        int64_t subset) {
  int64_t total = 0;
  for (const proto::ShardInfo* s : shards) total += static_cast<int64_t>(s->num_samples());
  IM_CHECK(total > 0, "dataset directory '", dir, "': split '", split, "' has no samples");
  IM_CHECK(subset >= 0 && subset <= total, "dataset directory '", dir, "': subset ", subset,
           " of split '", split, "' is outside [0, ", total, "] (the split has ", total,
           " samples)");
  int64_t left = subset > 0 ? subset : total;
  std::vector<int64_t> sizes;
  for (const proto::ShardInfo* s : shards) {
    sizes.push_back(std::min(left, static_cast<int64_t>(s->num_samples())));
    left -= sizes.back();
  }
  return sizes;
}

}  // namespace

std::vector<int64_t> Dataset::shard_sizes(const std::string& dir, const std::string& split,
                                          int64_t subset) {
  const proto::DatasetManifest m = read_manifest(dir);
  return sizes_after_subset(split_shards(m, dir, split), dir, split, subset);
}

Dataset Dataset::open(const std::string& dir, const std::string& split, int64_t subset,
                      const std::vector<int>& only_shards) {
  const proto::DatasetManifest m = read_manifest(dir);
  Dataset ds;
  ds.dir_ = dir;
  ds.split_ = split;
  ds.name_ = m.name();
  ds.modality_ = m.modality();
  ds.sample_shape_.assign(m.sample_shape().begin(), m.sample_shape().end());
  ds.sample_numel_ = shape_numel(ds.sample_shape_);
  ds.num_classes_ = m.num_classes();
  ds.channel_mean_.assign(m.channel_mean().begin(), m.channel_mean().end());
  ds.channel_std_.assign(m.channel_std().begin(), m.channel_std().end());
  ds.class_names_.assign(m.class_names().begin(), m.class_names().end());

  const std::vector<const proto::ShardInfo*> shards = split_shards(m, dir, split);
  ds.shard_sizes_ = sizes_after_subset(shards, dir, split, subset);
  std::vector<bool> wanted(shards.size(), only_shards.empty());
  for (int s : only_shards) {
    IM_CHECK(s >= 0 && static_cast<size_t>(s) < shards.size(), "dataset directory '", dir,
             "': split '", split, "' has ", shards.size(), " shards, no shard ", s);
    wanted[static_cast<size_t>(s)] = true;
  }

  const DType in_dtype = ds.is_image() ? DType::UInt8 : DType::Int32;
  auto shape_of = [&](int64_t n) {
    Shape shape{n};
    shape.insert(shape.end(), ds.sample_shape_.begin(), ds.sample_shape_.end());
    return shape;
  };
  const size_t sample_bytes = static_cast<size_t>(ds.sample_numel_) * dtype_size(in_dtype);
  // Reading everything (one process, or evaluation): one contiguous array, and every shard
  // is checked even past `subset`, so a damaged file is an error whichever part a run uses.
  // Reading some shards: each in its own arrays, the others never opened.
  const bool all = only_shards.empty();
  int64_t total = 0;
  for (const proto::ShardInfo* s : shards) total += static_cast<int64_t>(s->num_samples());
  Tensor inputs, labels;
  if (all) {
    inputs = Tensor::empty(shape_of(total), in_dtype);
    labels = Tensor::empty({total}, DType::Int32);
  }
  int64_t at = 0, begin = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const proto::ShardInfo& info = *shards[i];
    const auto stored = static_cast<int64_t>(info.num_samples());
    Shard shard;
    shard.begin = begin;
    shard.count = ds.shard_sizes_[i];
    shard.file = info.file();
    if (all) {
      read_shard(dir, m, info, static_cast<char*>(inputs.data_ptr()) + at * sample_bytes,
                 labels.data<int32_t>() + at);
      shard.inputs = inputs.slice(0, at, at + shard.count);
      shard.labels = labels.slice(0, at, at + shard.count);
      shard.loaded = true;
    } else if (wanted[i] && shard.count > 0) {
      Tensor in = Tensor::empty(shape_of(stored), in_dtype);
      Tensor lab = Tensor::empty({stored}, DType::Int32);
      read_shard(dir, m, info, in.data_ptr(), lab.data<int32_t>());
      shard.inputs = shard.count < stored ? in.slice(0, 0, shard.count).clone() : in;
      shard.labels = shard.count < stored ? lab.slice(0, 0, shard.count).clone() : lab;
      shard.loaded = true;
    }
    ds.shards_.push_back(std::move(shard));
    at += stored;
    begin += ds.shard_sizes_[i];
  }
  ds.num_samples_ = begin;
  if (all) {
    ds.inputs_ = subset > 0 ? inputs.slice(0, 0, subset).clone() : inputs;
    ds.labels_ = subset > 0 ? labels.slice(0, 0, subset).clone() : labels;
    int64_t row = 0;  // the shards as views of the kept arrays
    for (Shard& s : ds.shards_) {
      s.inputs = ds.inputs_.slice(0, row, row + s.count);
      s.labels = ds.labels_.slice(0, row, row + s.count);
      row += s.count;
    }
  }
  return ds;
}

int64_t Dataset::shards_read() const {
  return std::count_if(shards_.begin(), shards_.end(), [](const Shard& s) { return s.loaded; });
}

const Tensor& Dataset::inputs() const {
  IM_CHECK(inputs_.defined(), "dataset '", dir_, "' split '", split_,
           "': inputs() needs every shard read; this process read ", shards_read(), " of ",
           shards_.size());
  return inputs_;
}

const Tensor& Dataset::labels() const {
  IM_CHECK(labels_.defined(), "dataset '", dir_, "' split '", split_,
           "': labels() needs every shard read; this process read ", shards_read(), " of ",
           shards_.size());
  return labels_;
}

const Dataset::Shard& Dataset::locate(int64_t i, int64_t& row) const {
  IM_CHECK(i >= 0 && i < num_samples_, "dataset '", dir_, "' split '", split_, "': sample index ",
           i, " is outside [0, ", num_samples_, ")");
  // The last shard starting at or before i: never an empty one, which shares its start
  // with the shard after it.
  const auto it = std::upper_bound(shards_.begin(), shards_.end(), i,
                                   [](int64_t v, const Shard& s) { return v < s.begin; });
  const Shard& s = *(it - 1);
  IM_CHECK(s.loaded, "dataset '", dir_, "' split '", split_, "': sample ", i, " is in shard ",
           s.file, ", which this process did not read");
  row = i - s.begin;
  return s;
}

Sample Dataset::sample(int64_t i) const {
  int64_t row = 0;
  const Shard& s = locate(i, row);
  return Sample{s.inputs.select(0, row), s.labels.data<int32_t>()[row]};
}

int64_t Dataset::label(int64_t i) const {
  int64_t row = 0;
  const Shard& s = locate(i, row);
  return s.labels.data<int32_t>()[row];
}

std::span<const uint8_t> Dataset::image(int64_t i) const {
  IM_CHECK(is_image(), "dataset '", dir_, "': image() on a ", modality_, " dataset");
  int64_t row = 0;
  const Shard& s = locate(i, row);
  return {s.inputs.data<uint8_t>() + row * sample_numel_, static_cast<size_t>(sample_numel_)};
}

std::span<const int32_t> Dataset::tokens(int64_t i) const {
  IM_CHECK(!is_image(), "dataset '", dir_, "': tokens() on an image dataset");
  int64_t row = 0;
  const Shard& s = locate(i, row);
  return {s.inputs.data<int32_t>() + row * sample_numel_, static_cast<size_t>(sample_numel_)};
}

}  // namespace im::data
