#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "kernels/philox.h"

namespace im::data {

uint64_t stream_key(uint64_t seed, uint64_t purpose) {
  // splitmix64 finaliser: nearby seeds and purposes give unrelated keys.
  uint64_t z = seed ^ (purpose * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

SliceRange rank_slice(int64_t size, int rank, int world) {
  return {size * rank / world, size * (rank + 1) / world};
}

Sampler::Sampler(int64_t num_samples, const SamplerOptions& options)
    : num_samples_(num_samples), options_(options) {
  IM_CHECK(options.batch_size > 0, "sampler: batch size must be positive, got ",
           options.batch_size);
  IM_CHECK(options.world_size >= 1 && options.rank >= 0 && options.rank < options.world_size,
           "sampler: rank ", options.rank, " is not in a world of ", options.world_size);
  IM_CHECK(options.batch_size >= options.world_size, "the global batch of ", options.batch_size,
           " samples is smaller than the ", options.world_size,
           " ranks: every rank needs at least one sample per step");
  IM_CHECK(num_samples > 0, "sampler: the dataset has no samples");
  samples_per_epoch_ =
      options.drop_last ? num_samples / options.batch_size * options.batch_size : num_samples;
  // A final batch too small to give every rank a sample is left out (only with N > 1).
  if (samples_per_epoch_ % options.batch_size < options.world_size)
    samples_per_epoch_ -= samples_per_epoch_ % options.batch_size;
  IM_CHECK(samples_per_epoch_ > 0, "sampler: ", num_samples, " samples make no full batch of ",
           options.batch_size, " with drop_last (use a smaller batch or keep the last batch)");
}

int64_t Sampler::batches_per_epoch() const {
  return (samples_per_epoch_ + options_.batch_size - 1) / options_.batch_size;
}

std::vector<int64_t> Sampler::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(num_samples_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!options_.shuffle) return order;
  // Fisher–Yates from the back; step k draws two Philox words (64 random bits) and
  // maps them to [0, i] by a multiply-shift, whose bias (< i / 2^64) is negligible.
  const uint64_t key = stream_key(options_.seed, kShuffleStream);
  const uint64_t offset = static_cast<uint64_t>(epoch) << kEpochBlockShift;
  for (int64_t i = num_samples_ - 1, k = 0; i > 0; --i, ++k) {
    const uint64_t w = static_cast<uint64_t>(k) * 2;
    const uint64_t r =
        (uint64_t{philox::word(key, offset, w)} << 32) | philox::word(key, offset, w + 1);
    const auto j = static_cast<int64_t>(
        (static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

std::optional<IndexBatch> Sampler::next() {
  if (cursor_.position >= samples_per_epoch_) {
    cursor_ = SamplerCursor{cursor_.epoch + 1, 0};
    return std::nullopt;
  }
  if (order_epoch_ != cursor_.epoch) {
    order_ = epoch_order(cursor_.epoch);
    order_epoch_ = cursor_.epoch;
  }
  IndexBatch b;
  b.epoch = cursor_.epoch;
  b.index_in_epoch = cursor_.position / options_.batch_size;
  const int64_t end = std::min(cursor_.position + options_.batch_size, samples_per_epoch_);
  b.global_size = end - cursor_.position;
  const SliceRange mine = rank_slice(b.global_size, options_.rank, options_.world_size);
  b.global_offset = mine.begin;
  b.indices.assign(order_.begin() + cursor_.position + mine.begin,
                   order_.begin() + cursor_.position + mine.end);
  cursor_.position = end;
  return b;
}

void Sampler::set_cursor(const SamplerCursor& cursor) {
  IM_CHECK(cursor.epoch >= 0 && cursor.position >= 0 && cursor.position <= samples_per_epoch_,
           "sampler: cursor (epoch ", cursor.epoch, ", position ", cursor.position,
           ") does not fit an epoch of ", samples_per_epoch_,
           " samples (was it saved for another dataset or batch size?)");
  cursor_ = cursor;
}

}  // namespace im::data
