#include "layers/parameter_store.h"

#include "core/autograd.h"
#include "core/error.h"

namespace im::layers {

namespace {
// Offsets are rounded up to 16 elements (64 bytes in float32) so every parameter starts
// on a cache line, which vectorised and CUDA kernels over one parameter like.
constexpr int64_t kAlign = 16;
}  // namespace

ParameterStore::ParameterStore(Module& root, DType dtype, Device device) {
  int64_t offset = 0;
  for (const NamedParameter& p : root.named_parameters()) {
    ParamSlot slot;
    slot.name = p.name;
    slot.shape = p.tensor->shape();
    slot.numel = p.tensor->numel();
    slot.offset = offset;
    slot.options = p.options;
    slot.tensor = p.tensor;
    offset += (slot.numel + kAlign - 1) / kAlign * kAlign;
    slots_.push_back(std::move(slot));
  }
  // bfloat16 lacks the precision to accumulate small updates, so it only ever holds a
  // rounded copy of float32 masters.
  const DType value_dtype = dtype == DType::BFloat16 ? DType::Float32 : dtype;
  Tensor values = Tensor::zeros({offset}, value_dtype, device);
  grads_ = Tensor::zeros({offset}, value_dtype, device);
  decay_mask_ = Tensor::zeros({offset}, value_dtype, device);
  NoGradGuard no_grad;
  for (const ParamSlot& s : slots_) {
    values.slice(0, s.offset, s.offset + s.numel).view(s.shape).copy_(*s.tensor);
    if (s.options.weight_decay) decay_mask_.slice(0, s.offset, s.offset + s.numel).fill_(1.0);
  }
  if (value_dtype == dtype) {
    params_ = values;
  } else {
    master_ = values;
    params_ = Tensor::zeros({offset}, dtype, device);
    refresh_model_params();
  }
  rebind_leaves();
}

void ParameterStore::rebind_leaves() {
  NoGradGuard no_grad;
  for (const ParamSlot& s : slots_) {
    const Tensor& values = has_master() && s.options.keep_float32 ? master_ : params_;
    Tensor view = values.slice(0, s.offset, s.offset + s.numel).view(s.shape);
    view.set_requires_grad(true);
    view.set_name(s.name);
    view.set_grad(grads_.slice(0, s.offset, s.offset + s.numel).view(s.shape));
    *s.tensor = view;
  }
}

void ParameterStore::refresh_model_params() {
  if (!has_master()) return;
  NoGradGuard no_grad;
  params_.copy_(master_);  // a cast: round to nearest even
}

void ParameterStore::zero_grad() {
  grads_.zero_();
}

void ParameterStore::bind(const Tensor& flat) {
  IM_CHECK(flat.dim() == 1 && flat.numel() == numel(), "ParameterStore::bind: expected [", numel(),
           "], got ", flat.describe());
  for (const ParamSlot& s : slots_)
    *s.tensor = flat.slice(0, s.offset, s.offset + s.numel).view(s.shape);
}

}  // namespace im::layers
