#include "data/dataset.h"

#include <set>

#include "core/error.h"
#include "data/manifest.h"
#include "data/shard_reader.h"

namespace im::data {

Dataset Dataset::open(const std::string& dir, const std::string& split, int64_t subset) {
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

  std::vector<const proto::ShardInfo*> shards;
  std::set<std::string> splits;
  int64_t total = 0;
  for (const proto::ShardInfo& s : m.shards()) {
    splits.insert(s.split());
    if (s.split() != split) continue;
    shards.push_back(&s);
    total += static_cast<int64_t>(s.num_samples());
  }
  if (shards.empty()) {
    std::string have;
    for (const std::string& s : splits) have += (have.empty() ? "" : ", ") + s;
    IM_CHECK(false, "dataset directory '", dir, "': manifest.pb lists no shards for split '", split,
             "' (it has: ", have.empty() ? "none" : have, ")");
  }
  IM_CHECK(total > 0, "dataset directory '", dir, "': split '", split, "' has no samples");
  IM_CHECK(subset >= 0 && subset <= total, "dataset directory '", dir, "': subset ", subset,
           " of split '", split, "' is outside [0, ", total, "] (the split has ", total,
           " samples)");

  // Every shard is checked and read, even past `subset`: a damaged file is an error
  // whichever part of the data this run happens to use.
  Shape all_shape{total};
  all_shape.insert(all_shape.end(), ds.sample_shape_.begin(), ds.sample_shape_.end());
  const DType in_dtype = ds.is_image() ? DType::UInt8 : DType::Int32;
  Tensor inputs = Tensor::empty(all_shape, in_dtype);
  Tensor labels = Tensor::empty({total}, DType::Int32);
  auto* in_bytes = static_cast<char*>(inputs.data_ptr());
  const size_t sample_bytes = static_cast<size_t>(ds.sample_numel_) * dtype_size(in_dtype);
  int64_t at = 0;
  for (const proto::ShardInfo* s : shards) {
    read_shard(dir, m, *s, in_bytes + static_cast<size_t>(at) * sample_bytes,
               labels.data<int32_t>() + at);
    at += static_cast<int64_t>(s->num_samples());
  }

  ds.num_samples_ = subset > 0 ? subset : total;
  ds.inputs_ = subset > 0 ? inputs.slice(0, 0, subset).clone() : inputs;
  ds.labels_ = subset > 0 ? labels.slice(0, 0, subset).clone() : labels;
  return ds;
}

void Dataset::check_index(int64_t i) const {
  IM_CHECK(i >= 0 && i < num_samples_, "dataset '", dir_, "' split '", split_, "': sample index ",
           i, " is outside [0, ", num_samples_, ")");
}

Sample Dataset::sample(int64_t i) const {
  check_index(i);
  return Sample{inputs_.select(0, i), label(i)};
}

int64_t Dataset::label(int64_t i) const {
  check_index(i);
  return labels_.data<int32_t>()[i];
}

std::span<const uint8_t> Dataset::image(int64_t i) const {
  check_index(i);
  IM_CHECK(is_image(), "dataset '", dir_, "': image() on a ", modality_, " dataset");
  return {inputs_.data<uint8_t>() + i * sample_numel_, static_cast<size_t>(sample_numel_)};
}

std::span<const int32_t> Dataset::tokens(int64_t i) const {
  check_index(i);
  IM_CHECK(!is_image(), "dataset '", dir_, "': tokens() on an image dataset");
  return {inputs_.data<int32_t>() + i * sample_numel_, static_cast<size_t>(sample_numel_)};
}

}  // namespace im::data
