// Reverse-mode autograd: ops record Nodes on a tape as they run; backward() walks
// them in reverse topological order (newest first), summing gradients per input and
// accumulating into leaves. Saved tensors are dropped as soon as a node has run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace im {

// ---- grad mode ------------------------------------------------------------------
bool grad_enabled();

// Disables tape recording in its scope (evaluation, optimiser updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// ---- graph ----------------------------------------------------------------------
struct Edge {
  std::shared_ptr<Node> node;  // null: that input needs no gradient
  uint32_t input_nr = 0;       // which output slot of `node` this edge feeds
};

struct OutputMeta {
  Shape shape;
  DType dtype = DType::Float32;
  Device device;
};

class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Gradients w.r.t. this node's forward outputs in, gradients w.r.t. its inputs out
  // (one per next edge; undefined where an input needs no gradient).
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grad_outputs) = 0;
  // Frees what forward saved for backward; called right after apply().
  virtual void release_saved() {}

  std::vector<Edge> next_edges;
  std::vector<OutputMeta> outputs;
  uint64_t sequence_nr = 0;  // creation order: backward runs the newest first
  // Called with the complete gradient of output `output_nr` (retain_grad uses it).
  std::vector<std::pair<uint32_t, std::function<void(const Tensor&)>>> output_hooks;
};

// Signature of an op's backward: grads of its outputs (zeros where an output got no
// gradient), and which inputs need one. Returns one gradient per input (undefined
// allowed where not needed).
using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads,
                                                     const std::vector<bool>& needs_input_grad)>;

// True when grad mode is on and some input requires a gradient.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records op `name` (which must be in the op registry) with a backward closure.
// The closure must capture tensors through .detach() so the tape holds no cycles.
// Does nothing when no input requires a gradient or grad mode is off.
void record_op(const char* name, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& outputs, BackwardFn backward);

// Runs backward from `roots` seeded with `root_grads`.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& root_grads);

// Sums a broadcast gradient back down to `shape` (the inverse of expand).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// Nodes alive right now (the tape-leak test watches this).
int64_t live_node_count();

}  // namespace im
