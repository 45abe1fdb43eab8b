// Collective communication between the ranks of a run, behind one interface: MPI for
// CPU tensors (here) and NCCL for CUDA tensors (the CUDA backend issue), so the trainer
// and the gradient reducer never see which one they use. Every rank must issue the same
// collectives in the same order (docs/DESIGN.md).
#pragma once

#include <memory>

#include "core/tensor.h"

namespace im::dist {

enum class ReduceOp { Sum, Avg, Max, Min };

// A collective in flight. wait() completes it (and applies Avg's scaling); test() says
// whether it would complete without blocking.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // In place over a contiguous tensor (float32, float64 or int64).
  virtual void all_reduce(Tensor& t, ReduceOp op) = 0;
  // Starts an in-place all-reduce; `t` must stay untouched until the Work completes.
  virtual std::unique_ptr<Work> all_reduce_async(Tensor& t, ReduceOp op) = 0;
  virtual void broadcast(Tensor& t, int root) = 0;
  // [size, ...t.shape]: every rank's tensor, in rank order.
  virtual Tensor all_gather(const Tensor& t) = 0;
  // t's dim 0 is size * k; returns this rank's [k, ...] block of the reduction.
  virtual Tensor reduce_scatter(const Tensor& t, ReduceOp op) = 0;
  virtual void barrier() = 0;
  // A new communicator over the same ranks whose collectives never interleave with this
  // one's (MPI_Comm_dup; ncclCommSplit for NCCL): the loss's batch statistics run on
  // their own while gradient buckets are in flight.
  virtual std::unique_ptr<Communicator> duplicate() = 0;
};

}  // namespace im::dist
