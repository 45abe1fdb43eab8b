#include "data/loader.h"

#include "core/error.h"

namespace im::data {

LoaderOptions LoaderOptions::for_training(const DataConfig& cfg, int64_t batch_size,
                                          uint64_t seed) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = true;
  o.stratify_by_shard = true;
  o.seed = seed;
  o.normalize = cfg.normalize;
  o.crop_pad = cfg.augment_crop_pad;
  o.flip = cfg.augment_flip;
  o.workers = cfg.workers;
  o.prefetch = cfg.prefetch;
  return o;
}

LoaderOptions LoaderOptions::for_evaluation(const DataConfig& cfg, int64_t batch_size) {
  LoaderOptions o;
  o.batch_size = batch_size;
  o.normalize = cfg.normalize;
  o.workers = cfg.workers;
  o.prefetch = cfg.prefetch;
  return o;
}

namespace {

CollateOptions collate_options(const LoaderOptions& o) {
  IM_CHECK(o.workers >= 0, "loader: workers must be >= 0, got ", o.workers);
  IM_CHECK(o.prefetch >= 1, "loader: prefetch must be >= 1, got ", o.prefetch);
  return CollateOptions{o.normalize, o.crop_pad, o.flip, o.seed, o.pin_memory};
}

SamplerOptions sampler_options(const LoaderOptions& o, const std::vector<int64_t>& shard_sizes) {
  SamplerOptions s{o.batch_size, o.shuffle, o.seed, o.drop_last, o.rank, o.world_size, {}};
  if (o.stratify_by_shard) s.shard_sizes = shard_sizes;
  return s;
}

int64_t sum_of(const std::vector<int64_t>& v) {
  int64_t n = 0;
  for (int64_t x : v) n += x;
  return n;
}

}  // namespace

std::vector<int> shards_for_rank(const std::vector<int64_t>& shard_sizes,
                                 const LoaderOptions& options) {
  return Sampler(sum_of(shard_sizes), sampler_options(options, shard_sizes)).shards_needed();
}

Loader::Loader(Dataset dataset, LoaderOptions options, SamplerCursor start)
    : dataset_(std::move(dataset)),
      options_(std::move(options)),
      collate_(dataset_, collate_options(options_)),
      sampler_(dataset_.num_samples(), sampler_options(options_, dataset_.shard_sizes())),
      batches_per_epoch_(sampler_.batches_per_epoch()),
      cursor_(start) {
  sampler_.set_cursor(start);
  for (int64_t i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  stop_workers();
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  space_cv_.notify_all();
  ready_cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

Loader::Item Loader::produce(const std::optional<IndexBatch>& indices, SamplerCursor after) const {
  Item item;
  item.after = after;
  if (!indices) return item;  // end of epoch
  try {
    item.batch = collate_(*indices);
    if (options_.on_batch) options_.on_batch(*item.batch);
  } catch (...) {
    item.batch.reset();
    item.error = std::current_exception();
  }
  return item;
}

void Loader::worker_loop() {
  for (;;) {
    int64_t slot;
    std::optional<IndexBatch> indices;
    SamplerCursor after;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // A bounded window: at most `prefetch` slots beyond the consumer are claimed.
      space_cv_.wait(lock,
                     [this] { return stop_ || next_claim_ < next_deliver_ + options_.prefetch; });
      if (stop_) return;
      slot = next_claim_++;
      // Claiming and advancing the sampler together keeps slots in sampler order.
      indices = sampler_.next();
      after = sampler_.cursor();
    }
    Item item = produce(indices, after);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace(slot, std::move(item));
    }
    ready_cv_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  if (failed_) std::rethrow_exception(failed_);
  Item item;
  if (threads_.empty()) {
    std::optional<IndexBatch> indices = sampler_.next();
    item = produce(indices, sampler_.cursor());
  } else {
    std::unique_lock<std::mutex> lock(mu_);
    ready_cv_.wait(lock, [this] { return ready_.count(next_deliver_) > 0; });
    auto it = ready_.find(next_deliver_);
    item = std::move(it->second);
    ready_.erase(it);
    ++next_deliver_;
    lock.unlock();
    space_cv_.notify_all();
  }
  if (item.error) {
    failed_ = item.error;
    stop_workers();  // nothing after a failed batch will be delivered
    std::rethrow_exception(failed_);
  }
  cursor_ = item.after;
  return std::move(item.batch);
}

}  // namespace im::data
