#include "dist/reducer.h"

#include "core/error.h"

namespace im::dist {

GradientReducer::GradientReducer(layers::ParameterStore& store, Communicator& comm,
                                 ReducerOptions options)
    : store_(store), comm_(comm) {
  IM_CHECK(options.bucket_bytes > 0, "reducer: bucket size must be positive");
  const auto& slots = store.slots();
  const int64_t elem = static_cast<int64_t>(dtype_size(store.flat_grads().dtype()));
  const int64_t cap = std::max<int64_t>(1, options.bucket_bytes / elem);
  // Walk parameters from last registered to first; a bucket is a flat range, so it grows
  // downwards from the end of the buffer.
  std::vector<size_t> bucket_of(slots.size());
  for (size_t k = slots.size(); k-- > 0;) {
    const layers::ParamSlot& s = slots[k];
    const int64_t slot_end = k + 1 < slots.size() ? slots[k + 1].offset : store.numel();
    // A new bucket when this parameter would push the current one past the cap (a
    // parameter larger than the cap gets a bucket of its own).
    if (buckets_.empty() || buckets_.back().end - s.offset > cap)
      buckets_.push_back(Bucket{s.offset, slot_end, {}});
    Bucket& b = buckets_.back();
    b.begin = s.offset;
    b.params.push_back(k);
    bucket_of[k] = buckets_.size() - 1;
  }
  pending_.assign(buckets_.size(), 0);
  work_.resize(buckets_.size());
  // Hooks outlive no reducer: they reach it through a handle the destructor clears.
  self_ = std::make_shared<GradientReducer*>(this);
  for (size_t k = 0; k < slots.size(); ++k) {
    const size_t bucket = bucket_of[k];
    std::weak_ptr<GradientReducer*> handle = self_;
    slots[k].tensor->register_grad_ready_hook([handle, bucket](const Tensor&) {
      if (auto h = handle.lock(); h && *h) (*h)->on_ready(bucket);
    });
  }
}

GradientReducer::~GradientReducer() {
  *self_ = nullptr;
  for (auto& w : work_)
    if (w) w->wait();
}

void GradientReducer::prepare(bool sync) {
  for (const auto& w : work_)
    IM_CHECK(!w, "reducer: prepare() called while reductions are still in flight");
  sync_ = sync;
  in_backward_ = sync;
  next_launch_ = 0;
  launched_during_backward_ = 0;
  for (size_t i = 0; i < buckets_.size(); ++i)
    pending_[i] = static_cast<int64_t>(buckets_[i].params.size());
}

void GradientReducer::on_ready(size_t bucket) {
  if (!sync_) return;
  --pending_[bucket];
  launch_ready_in_order();
}

void GradientReducer::launch_ready_in_order() {
  while (next_launch_ < buckets_.size() && pending_[next_launch_] == 0) {
    const Bucket& b = buckets_[next_launch_];
    Tensor slice = store_.flat_grads().slice(0, b.begin, b.end);
    work_[next_launch_] = comm_.all_reduce_async(slice, ReduceOp::Avg);
    if (in_backward_) ++launched_during_backward_;
    ++next_launch_;
  }
}

void GradientReducer::finish() {
  if (!sync_) return;
  in_backward_ = false;
  // Parameters that received no gradient this step never fired their hook; their
  // buckets still have to be reduced, in the same order on every rank.
  for (size_t i = next_launch_; i < buckets_.size(); ++i) pending_[i] = 0;
  launch_ready_in_order();
  for (auto& w : work_) {
    if (w) w->wait();
    w.reset();
  }
  sync_ = false;
}

}  // namespace im::dist
