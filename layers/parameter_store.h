// All parameters of a model in one flat buffer and all gradients in another (as llm.c
// does): each parameter is a view at a fixed offset. The optimiser, gradient buckets,
// optimiser-state partitions and checkpoint shards are all slices of this one space.
//
// Mixed precision (dtype bfloat16): the model computes with a bfloat16 copy of the
// parameters, while float32 master values (what AdamW updates, checkpoints save and ranks
// broadcast) live beside them at the same offsets. Gradients stay float32: each bf16
// gradient is widened as it is added into its slot, so sums over uses and over ranks keep
// float precision. Parameters with ParamOptions::keep_float32 are views of the masters.
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
  // flat_grads(). Modules build their parameters on the CPU; this moves them. With dtype
  // bfloat16 the float32 values the modules built become the master copy.
  ParameterStore(Module& root, DType dtype, Device device = Device::cpu());

  Device device() const { return params_.device(); }

  // The values the model computes with (the model's dtype), and the gradients (float32
  // under mixed precision).
  Tensor& flat_params() { return params_; }
  Tensor& flat_grads() { return grads_; }
  // The values the optimiser updates and checkpoints hold: float32 masters under mixed
  // precision, flat_params() itself otherwise.
  Tensor& master_params() { return has_master() ? master_ : params_; }
  bool has_master() const { return master_.defined(); }
  // After master_params() changed outside the optimiser (a checkpoint restore, a
  // broadcast): the model's copy takes the masters' values (rounded to its dtype).
  void refresh_model_params();
  const std::vector<ParamSlot>& slots() const { return slots_; }
  int64_t numel() const { return params_.numel(); }
  // Flat 0/1 mask in the masters' dtype: 1 where decoupled weight decay applies.
  const Tensor& decay_mask() const { return decay_mask_; }
  void zero_grad();

  // Rebinds every parameter as a differentiable view of `flat` (numel() elements), so
  // gradients flow into `flat` instead. Gradient checks of whole modules use it.
  void bind(const Tensor& flat);
  // Restores the leaf views of flat_params() with gradients in flat_grads().
  void rebind_leaves();

 private:
  Tensor params_, grads_, decay_mask_;
  Tensor master_;  // float32 masters when params_ is bfloat16; undefined otherwise
  std::vector<ParamSlot> slots_;
};

}  // namespace im::layers
