#include "data/sampler.h"

#include <algorithm>
#include <limits>
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

namespace {
// Fisher–Yates from the back; step k draws two Philox words (64 random bits) and maps them
// to [0, i] by a multiply-shift, whose bias (< i / 2^64) is negligible.
void shuffle_in_place(std::vector<int64_t>& v, uint64_t key, uint64_t offset) {
  for (int64_t i = static_cast<int64_t>(v.size()) - 1, k = 0; i > 0; --i, ++k) {
    const uint64_t w = static_cast<uint64_t>(k) * 2;
    const uint64_t r =
        (uint64_t{philox::word(key, offset, w)} << 32) | philox::word(key, offset, w + 1);
    const auto j = static_cast<int64_t>(
        (static_cast<unsigned __int128>(r) * static_cast<uint64_t>(i + 1)) >> 64);
    std::swap(v[static_cast<size_t>(i)], v[static_cast<size_t>(j)]);
  }
}
}  // namespace

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
  if (options.shard_sizes.empty()) return;

  // Shard-stratified order: groups of shards, each owning a band of batch columns.
  int64_t sum = 0;
  std::vector<int> nonempty;
  for (size_t s = 0; s < options.shard_sizes.size(); ++s) {
    IM_CHECK(options.shard_sizes[s] >= 0, "sampler: shard ", s, " has a negative size");
    if (options.shard_sizes[s] > 0) nonempty.push_back(static_cast<int>(s));
    sum += options.shard_sizes[s];
  }
  IM_CHECK(sum == num_samples, "sampler: the shard sizes add up to ", sum, ", not the ",
           num_samples, " samples");
  const auto batch = options.batch_size;
  const auto count = std::min<int64_t>(static_cast<int64_t>(nonempty.size()), batch);
  groups_.resize(static_cast<size_t>(count));
  for (int64_t g = 0; g < count; ++g) {
    groups_[g].column = batch * g / count;
    groups_[g].width = batch * (g + 1) / count - groups_[g].column;
  }
  std::vector<int64_t> first(options.shard_sizes.size() + 1, 0);
  for (size_t s = 0; s < options.shard_sizes.size(); ++s)
    first[s + 1] = first[s] + options.shard_sizes[s];
  for (size_t k = 0; k < nonempty.size(); ++k) {
    Group& g = groups_[k % groups_.size()];
    const int s = nonempty[k];
    g.shards.push_back(s);
    for (int64_t i = first[s]; i < first[s + 1]; ++i) g.samples.push_back(i);
  }
  int64_t rows = std::numeric_limits<int64_t>::max();
  for (const Group& g : groups_)
    rows = std::min(rows, static_cast<int64_t>(g.samples.size()) / g.width);
  IM_CHECK(rows > 0, "sampler: a batch of ", batch, " takes ", groups_.back().width,
           " samples per step from each of ", groups_.size(),
           " shard groups, more than the smallest group has; use a smaller batch or fewer shards");
  samples_per_epoch_ = rows * batch;
}

int64_t Sampler::batches_per_epoch() const {
  return (samples_per_epoch_ + options_.batch_size - 1) / options_.batch_size;
}

std::vector<int64_t> Sampler::epoch_order(int64_t epoch) const {
  if (!groups_.empty()) {  // the stratified order, batch by batch
    std::vector<std::vector<int64_t>> orders;
    for (size_t g = 0; g < groups_.size(); ++g) orders.push_back(group_order(g, epoch));
    std::vector<int64_t> order;
    for (int64_t row = 0; row * options_.batch_size < samples_per_epoch_; ++row)
      for (size_t g = 0; g < groups_.size(); ++g)
        order.insert(order.end(), orders[g].begin() + row * groups_[g].width,
                     orders[g].begin() + (row + 1) * groups_[g].width);
    return order;
  }
  std::vector<int64_t> order(static_cast<size_t>(num_samples_));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options_.shuffle)
    shuffle_in_place(order, stream_key(options_.seed, kShuffleStream),
                     static_cast<uint64_t>(epoch) << kEpochBlockShift);
  return order;
}

std::vector<int64_t> Sampler::group_order(size_t g, int64_t epoch) const {
  std::vector<int64_t> order = groups_[g].samples;
  // Each group draws from its own Philox key, epoch e from block e << 40 of it.
  if (options_.shuffle)
    shuffle_in_place(order, stream_key(stream_key(options_.seed, kShuffleStream), g + 1),
                     static_cast<uint64_t>(epoch) << kEpochBlockShift);
  return order;
}

std::vector<int64_t> Sampler::stratified_batch(int64_t row, int64_t begin, int64_t end) {
  if (order_epoch_ != cursor_.epoch) {  // this rank's groups' orders for the epoch
    group_orders_.assign(groups_.size(), {});
    for (size_t g = 0; g < groups_.size(); ++g)
      if (groups_[g].column < end && begin < groups_[g].column + groups_[g].width)
        group_orders_[g] = group_order(g, cursor_.epoch);
    order_epoch_ = cursor_.epoch;
  }
  std::vector<int64_t> out;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Group& gr = groups_[g];
    const int64_t lo = std::max(begin, gr.column), hi = std::min(end, gr.column + gr.width);
    for (int64_t c = lo; c < hi; ++c)
      out.push_back(group_orders_[g][static_cast<size_t>(row * gr.width + c - gr.column)]);
  }
  return out;
}

std::vector<int> Sampler::shards_needed() const {
  std::vector<int> out;
  if (groups_.empty()) {
    for (size_t s = 0; s < options_.shard_sizes.size(); ++s) out.push_back(static_cast<int>(s));
    return out;
  }
  const SliceRange mine = rank_slice(options_.batch_size, options_.rank, options_.world_size);
  for (const Group& g : groups_)
    if (g.column < mine.end && mine.begin < g.column + g.width)
      out.insert(out.end(), g.shards.begin(), g.shards.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<IndexBatch> Sampler::next() {
  if (cursor_.position >= samples_per_epoch_) {
    cursor_ = SamplerCursor{cursor_.epoch + 1, 0};
    return std::nullopt;
  }
  if (!groups_.empty()) {  // stratified: every batch is full
    IndexBatch b;
    b.epoch = cursor_.epoch;
    b.index_in_epoch = cursor_.position / options_.batch_size;
    b.global_size = options_.batch_size;
    const SliceRange mine = rank_slice(b.global_size, options_.rank, options_.world_size);
    b.global_offset = mine.begin;
    b.indices = stratified_batch(b.index_in_epoch, mine.begin, mine.end);
    cursor_.position += options_.batch_size;
    return b;
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
  IM_CHECK(groups_.empty() || cursor.position % options_.batch_size == 0,
           "sampler: cursor "
           "position ",
           cursor.position, " is not a whole number of batches of ", options_.batch_size,
           " (was it saved with another batch size?)");
  cursor_ = cursor;
}

}  // namespace im::data
