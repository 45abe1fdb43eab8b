// All parameters of a model in one flat buffer and all gradients in another (as llm.c
// does): each parameter is a view at a fixed offset. The optimiser, gradient buckets,
// optimiser-state partitions and checkpoint shards are all slices of this one space.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "layers/module.h"

namespace im::layers {

struct ParamSlot {
  std::string name;
  Shape shape;
  int64_t offset = 0;  // in elements, into the flat buffers
  int64_t numel = 0;
  ParamOptions options;
  Tensor* tensor = nullptr;
};

class ParameterStore {
 public:
  // Packs the module's current parameter values into one flat buffer of `dtype` on
  // `device` and makes every parameter a leaf view of it, with its gradient a view of
  // flat_grads(). Modules build their parameters on the CPU; this moves them.
  ParameterStore(Module& root, DType dtype, Device device = Device::cpu());

  Device device() const { return params_.device(); }

  Tensor& flat_params() { return params_; }
  Tensor& flat_grads() { return grads_; }
  const std::vector<ParamSlot>& slots() const { return slots_; }
  int64_t numel() const { return params_.numel(); }
  // Flat 0/1 mask: 1 where decoupled weight decay applies.
  const Tensor& decay_mask() const { return decay_mask_; }
  void zero_grad();

  // Rebinds every parameter as a differentiable view of `flat` (numel() elements), so
  // gradients flow into `flat` instead. Gradient checks of whole modules use it.
  void bind(const Tensor& flat);
  // Restores the leaf views of flat_params() with gradients in flat_grads().
  void rebind_leaves();

 private:
  Tensor params_, grads_, decay_mask_;
  std::vector<ParamSlot> slots_;
};

}  // namespace im::layers
