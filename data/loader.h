// Delivers batches of a dataset split, epoch after epoch, assembled ahead of time by
// background threads. Batches arrive strictly in sampler order whatever the number of
// threads, and each batch's contents depend only on (seed, epoch, sample indices), so
// a run is reproducible. A worker's exception reaches the consumer on its next call;
// destroying the loader stops the workers promptly even if batches are still queued.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "data/collate.h"
#include "data/data_config.h"
#include "data/dataset.h"
#include "data/sampler.h"

namespace im::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;      // shuffling and augmentation draw from separate streams of it
  bool normalize = true;  // images: (pixel/255 - mean)/std with the manifest's statistics
  int64_t crop_pad = 0;   // images: random crop after zero padding; 0 off
  bool flip = false;      // images: random horizontal flip
  int64_t workers = 2;    // 0 assembles each batch in the caller's thread
  int64_t prefetch = 4;   // batches ready or in progress ahead of the consumer (>= 1)
  int rank = 0;           // data-parallel: deliver this rank's slice of each global batch
  int world_size = 1;
  bool stratify_by_shard = false;  // the sampler's shard-stratified order (data/sampler.h)
  // Batches assembled straight into pinned host memory, for a run on a GPU: their copies
  // to it are asynchronous (core/pinned_allocator.h).
  bool pin_memory = false;
  // Runs on each assembled batch in the worker thread (extra augmentation, moving to
  // pinned memory, ...); an exception it throws reaches the consumer like any other.
  std::function<void(Batch&)> on_batch;

  // A run's training split: shuffled by `seed`, augmented as `cfg` says, every sample.
  static LoaderOptions for_training(const DataConfig& cfg, int64_t batch_size, uint64_t seed);
  // A run's evaluation split: in order, not augmented, every sample.
  static LoaderOptions for_evaluation(const DataConfig& cfg, int64_t batch_size);
};

// The shards of a split (samples per shard) that the loader with `options` on this rank
// will read: every shard unless the order is stratified by shard.
std::vector<int> shards_for_rank(const std::vector<int64_t>& shard_sizes,
                                 const LoaderOptions& options);

class Loader {
 public:
  // Starts at `start` (a cursor saved from an earlier loader of the same dataset and
  // options continues its sequence exactly). Throws im::Error on bad options.
  Loader(Dataset dataset, LoaderOptions options, SamplerCursor start = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch of the current epoch, or nothing at its end; the call after that
  // starts the next epoch. Rethrows an exception raised while assembling the batch;
  // after that every call throws it again.
  std::optional<Batch> next();

  // Position after the last batch (or end of epoch) handed out: save it to resume.
  SamplerCursor cursor() const { return cursor_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return options_; }

 private:
  // One slot of the in-order stream: a batch, an end-of-epoch mark (no batch), or
  // the exception that assembling the batch raised.
  struct Item {
    std::optional<Batch> batch;
    std::exception_ptr error;
    SamplerCursor after;
  };

  Item produce(const std::optional<IndexBatch>& indices, SamplerCursor after) const;
  void worker_loop();
  void stop_workers();

  Dataset dataset_;
  LoaderOptions options_;
  Collator collate_;
  Sampler sampler_;  // advanced under mu_ by the thread claiming the next slot
  int64_t batches_per_epoch_;
  SamplerCursor cursor_;  // consumer side
  std::exception_ptr failed_;

  std::mutex mu_;
  std::condition_variable space_cv_;  // workers wait for room in the window
  std::condition_variable ready_cv_;  // the consumer waits for its next slot
  int64_t next_claim_ = 0;            // next slot a worker will fill
  int64_t next_deliver_ = 0;          // next slot the consumer will take
  bool stop_ = false;
  std::map<int64_t, Item> ready_;  // filled slots not yet taken
  std::vector<std::thread> threads_;
};

}  // namespace im::data
