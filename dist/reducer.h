// Data-parallel gradient averaging that overlaps with backward. Parameters are grouped
// into buckets, contiguous ranges of the flat gradient buffer filled in reverse
// registration order (the order backward produces gradients). Each parameter's
// "gradient ready" hook counts down its bucket; a complete bucket's all-reduce starts at
// once, without blocking, while backward continues. Buckets are launched in index order on
// every rank (a ready bucket waits for earlier ones, as PyTorch DDP does), so all ranks
// issue the same collectives in the same order.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "layers/parameter_store.h"

namespace im::dist {

struct ReducerOptions {
  int64_t bucket_bytes = 25 << 20;  // 25 MiB, PyTorch DDP's default
};

struct Bucket {
  int64_t begin = 0, end = 0;        // flat element range
  std::vector<size_t> params;        // indices into the store's slots
};

class GradientReducer {
 public:
  GradientReducer(layers::ParameterStore& store, Communicator& comm, ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Call before each backward. With sync = false (micro-batches before the last one of
  // an accumulation) the hooks do nothing and gradients just accumulate locally.
  void prepare(bool sync);
  // After backward: launches any bucket not yet launched (parameters that got no
  // gradient), waits for all, and leaves the flat gradients averaged over the ranks.
  void finish();

  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Buckets launched while backward was still running, in the last synchronised step.
  int64_t launched_during_backward() const { return launched_during_backward_; }

 private:
  void on_ready(size_t bucket);
  void launch_ready_in_order();

  layers::ParameterStore& store_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<int64_t> pending_;  // per bucket: parameters whose gradient is not ready
  std::vector<std::unique_ptr<Work>> work_;
  size_t next_launch_ = 0;
  bool sync_ = false;
  bool in_backward_ = false;
  int64_t launched_during_backward_ = 0;
  std::shared_ptr<GradientReducer*> self_;
};

}  // namespace im::dist
