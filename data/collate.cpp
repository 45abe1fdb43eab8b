#include "data/collate.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/philox.h"

namespace im::data {

Collator::Collator(const Dataset& dataset, const CollateOptions& options)
    : dataset_(&dataset), options_(options) {
  augment_ = options.crop_pad > 0 || options.flip;
  key_ = stream_key(options.seed, kAugmentStream);
  IM_CHECK(options.crop_pad >= 0, "augment_crop_pad must be >= 0, got ", options.crop_pad);
  if (!dataset.is_image()) {
    IM_CHECK(!augment_, "dataset '", dataset.dir(),
             "' holds text: crop and flip augmentation apply to images only");
    return;
  }
  const Shape& s = dataset.sample_shape();
  IM_CHECK(options.crop_pad < std::min(s[1], s[2]), "augment_crop_pad ", options.crop_pad,
           " is not smaller than the ", s[1], "x", s[2], " images of '", dataset.dir(), "'");
  lut_.resize(static_cast<size_t>(s[0]));
  for (size_t c = 0; c < lut_.size(); ++c) {
    const float mean = options.normalize ? dataset.channel_mean()[c] : 0.0f;
    const float inv_std = options.normalize ? 1.0f / dataset.channel_std()[c] : 1.0f;
    for (int v = 0; v < 256; ++v) lut_[c][v] = (static_cast<float>(v) / 255.0f - mean) * inv_std;
  }
}

Augmentation Collator::augmentation(int64_t epoch, int64_t sample) const {
  if (!augment_) return {};
  // One Philox block per (epoch, sample): word 0 → dy, 1 → dx, 2 → flip.
  const philox::Block b = philox::generate(
      key_, (static_cast<uint64_t>(epoch) << kEpochBlockShift) + static_cast<uint64_t>(sample));
  const auto span = static_cast<uint64_t>(2 * options_.crop_pad + 1);
  Augmentation a;
  a.dy = static_cast<int64_t>((uint64_t{b.v[0]} * span) >> 32) - options_.crop_pad;
  a.dx = static_cast<int64_t>((uint64_t{b.v[1]} * span) >> 32) - options_.crop_pad;
  a.flip = options_.flip && (b.v[2] >> 31) != 0;
  return a;
}

void Collator::image_into(float* out, int64_t sample, int64_t epoch) const {
  const Shape& s = dataset_->sample_shape();
  const int64_t channels = s[0], h = s[1], w = s[2];
  const uint8_t* src = dataset_->image(sample).data();
  if (!augment_) {
    for (int64_t c = 0; c < channels; ++c) {
      const auto& lut = lut_[static_cast<size_t>(c)];
      for (int64_t i = 0; i < h * w; ++i) out[c * h * w + i] = lut[src[c * h * w + i]];
    }
    return;
  }
  // out[y][x] = padded[y + dy][x' + dx] with x' = W-1-x when flipped, where the
  // padding is pixel value 0 (torchvision's RandomCrop(padding) then flip).
  const Augmentation a = augmentation(epoch, sample);
  for (int64_t c = 0; c < channels; ++c) {
    const auto& lut = lut_[static_cast<size_t>(c)];
    const uint8_t* plane = src + c * h * w;
    float* dst = out + c * h * w;
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = y + a.dy;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = (a.flip ? w - 1 - x : x) + a.dx;
        const bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
        dst[y * w + x] = lut[inside ? plane[sy * w + sx] : 0];
      }
    }
  }
}

Batch Collator::operator()(const IndexBatch& ib) const {
  const int64_t b = static_cast<int64_t>(ib.indices.size());
  const int64_t numel = dataset_->sample_numel();
  Batch out;
  out.epoch = ib.epoch;
  out.index_in_epoch = ib.index_in_epoch;
  out.global_offset = ib.global_offset;
  out.global_size = ib.global_size;
  Shape shape{b};
  shape.insert(shape.end(), dataset_->sample_shape().begin(), dataset_->sample_shape().end());
  auto make = [&](const Shape& s, DType dt) {
    return options_.pin_memory ? Tensor::empty_pinned(s, dt) : Tensor::empty(s, dt);
  };
  out.labels = make({b}, DType::Int64);
  int64_t* labels = out.labels.data<int64_t>();
  if (dataset_->is_image()) {
    out.inputs = make(shape, DType::Float32);
    float* dst = out.inputs.data<float>();
    for (int64_t i = 0; i < b; ++i) image_into(dst + i * numel, ib.indices[i], ib.epoch);
  } else {
    out.inputs = make(shape, DType::Int64);
    int64_t* dst = out.inputs.data<int64_t>();
    for (int64_t i = 0; i < b; ++i) {
      const auto tokens = dataset_->tokens(ib.indices[i]);
      std::copy(tokens.begin(), tokens.end(), dst + i * numel);
    }
  }
  for (int64_t i = 0; i < b; ++i) labels[i] = dataset_->label(ib.indices[i]);
  return out;
}

}  // namespace im::data
