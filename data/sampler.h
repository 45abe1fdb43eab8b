// Orders a split's samples into batches, epoch after epoch. In order, or shuffled by a
// permutation that depends only on (seed, epoch): reproducible, different per epoch,
// and independent of how batches are later assembled. The position in the stream is a
// small cursor that a checkpoint saves, so a resumed run sees the same batches.
//
// Data-parallel runs: every rank walks the same global order in global batches and keeps
// its own contiguous slice of each (rank r of N takes columns [B·r/N, B·(r+1)/N) of every
// batch), so the slices are disjoint, every rank runs the same number of steps, and the
// global batch sequence does not depend on N. The cursor counts global samples, so a
// checkpoint written by N ranks resumes on M.
//
// Shard-stratified order (given the split's shard sizes, for training): the G = min(shards,
// B) shard groups (non-empty shard k in group k mod G) each own a fixed band of the batch's
// columns, [B·g/G, B·(g+1)/G), and fill it, batch after batch, from their own permutation
// of the group's samples, drawn from (seed, epoch, group). A batch thus mixes every group in
// fixed proportions, the whole order is a function of (seed, epoch) alone, and a rank only
// ever needs the shards of the groups its columns cross: it opens just those files. An
// epoch is as many full batches as the smallest group fills; a group's leftover samples
// (fewer than its band per batch) wait for a later epoch's permutation.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace im::data {

// Where the sampler stands: `position` samples of epoch `epoch` have been handed out
// (position == samples_per_epoch() means the epoch's batches are all out but its end
// has not been reported yet).
struct SamplerCursor {
  int64_t epoch = 0;
  int64_t position = 0;
  bool operator==(const SamplerCursor&) const = default;
};

struct SamplerOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  uint64_t seed = 0;
  bool drop_last = false;  // leave out the last, smaller batch of each epoch
  int rank = 0;            // this rank's slice of every global batch
  int world_size = 1;      // a final batch smaller than this is left out (a rank would get none)
  // Samples per shard, in index order (sum = the sample count): shard-stratified order.
  // Empty: one plain permutation of all samples.
  std::vector<int64_t> shard_sizes = {};
};

// A batch of sample indices and where it sits in the stream.
struct IndexBatch {
  int64_t epoch = 0;
  int64_t index_in_epoch = 0;    // batch number within the epoch
  std::vector<int64_t> indices;  // this rank's slice of the global batch
  int64_t global_offset = 0;     // position of indices[0] in the global batch
  int64_t global_size = 0;       // samples in the global batch
};

// Rank `rank`'s share [begin, end) of a global batch of `size` samples over `world` ranks.
struct SliceRange {
  int64_t begin = 0, end = 0;
};
SliceRange rank_slice(int64_t size, int rank, int world);

class Sampler {
 public:
  // Throws im::Error when there is not a single batch per epoch to give, or when the batch
  // is smaller than the world.
  Sampler(int64_t num_samples, const SamplerOptions& options);

  int64_t num_samples() const { return num_samples_; }
  const SamplerOptions& options() const { return options_; }
  // Samples used per epoch: all of them, or a whole number of batches with drop_last.
  int64_t samples_per_epoch() const { return samples_per_epoch_; }
  int64_t batches_per_epoch() const;

  // The order in which epoch `epoch` visits the samples: [0, n) in order, or a
  // permutation of it drawn from (seed, epoch) when shuffling.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // The next batch of the current epoch, or nothing once its batches are all out;
  // the call that returns nothing moves the cursor to the start of the next epoch.
  std::optional<IndexBatch> next();

  // The shards (indices into options().shard_sizes) holding every sample this rank will ever
  // be given; every shard in plain order (none listed without shard sizes: all of them).
  std::vector<int> shards_needed() const;

  SamplerCursor cursor() const { return cursor_; }
  // Continues from a saved cursor; throws im::Error if it does not fit this sampler.
  void set_cursor(const SamplerCursor& cursor);

 private:
  int64_t num_samples_;
  SamplerOptions options_;
  int64_t samples_per_epoch_;
  // A shard group of the stratified order: its samples and its band of batch columns.
  struct Group {
    std::vector<int> shards;
    std::vector<int64_t> samples;  // global indices, shard by shard
    int64_t column = 0, width = 0;
  };
  std::vector<int64_t> group_order(size_t g, int64_t epoch) const;
  std::vector<int64_t> stratified_batch(int64_t row, int64_t begin, int64_t end);

  SamplerCursor cursor_;
  int64_t order_epoch_ = -1;  // the epoch `order_` / `group_orders_` belong to (lazily)
  std::vector<int64_t> order_;
  std::vector<Group> groups_;                       // empty: plain order
  std::vector<std::vector<int64_t>> group_orders_;  // per group; empty where this rank needs none
};

// Philox key of an independent random stream for `purpose`, derived from the run seed,
// so shuffling and augmentation never share numbers.
uint64_t stream_key(uint64_t seed, uint64_t purpose);
inline constexpr uint64_t kShuffleStream = 0x5348554646u;  // "SHUFF"
inline constexpr uint64_t kAugmentStream = 0x4155474du;    // "AUGM"
// Philox blocks reserved per epoch in a stream: epoch e starts at block e << 40.
inline constexpr int kEpochBlockShift = 40;

}  // namespace im::data
