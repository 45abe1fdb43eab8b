// Where batch statistics come from. In one process the local batch is the whole batch. In
// data-parallel training each rank holds a slice of the global batch, and the statistics
// that MODEL.md defines over the batch (loss means, the redundancy loss's standardisation
// and cross-covariance, the hash loss's marginal P̄, drop-path's per-sample mask) are taken
// over the global one: partial sums are all-reduced with an autograd-aware collective, so
// every rank computes the same loss and the averaged gradients equal one process's on the
// whole batch (docs/DESIGN.md, "Data-parallel semantics are exact").
#pragma once

#include <cstdint>

#include "core/ops.h"
#include "core/tensor.h"

namespace im::layers {

struct BatchReduce {
  GroupReduce reduce;       // in-place sum over the ranks; empty = a single process
  int64_t offset = 0;       // index of this rank's first sample in the global batch
  int64_t global_size = 0;  // samples in the global batch

  bool distributed() const { return static_cast<bool>(reduce); }
};

// Sum over the global batch of a per-rank partial sum (differentiable). Identity without a
// reduction (batch == nullptr or not distributed).
Tensor global_sum(const Tensor& partial, const BatchReduce* batch);
// The same for a plain number (no gradient): counts, accuracy tallies.
double global_sum(double partial, const BatchReduce* batch);
// Samples in the global batch of which this rank holds `local`.
int64_t global_batch_size(int64_t local, const BatchReduce* batch);

}  // namespace im::layers
