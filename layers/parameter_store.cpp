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
  params_ = Tensor::zeros({offset}, dtype, device);
  grads_ = Tensor::zeros({offset}, dtype, device);
  decay_mask_ = Tensor::zeros({offset}, dtype, device);
  NoGradGuard no_grad;
  for (const ParamSlot& s : slots_) {
    params_.slice(0, s.offset, s.offset + s.numel).view(s.shape).copy_(*s.tensor);
    if (s.options.weight_decay) decay_mask_.slice(0, s.offset, s.offset + s.numel).fill_(1.0);
  }
  rebind_leaves();
}

void ParameterStore::rebind_leaves() {
  NoGradGuard no_grad;
  for (const ParamSlot& s : slots_) {
    Tensor view = params_.slice(0, s.offset, s.offset + s.numel).view(s.shape);
    view.set_requires_grad(true);
    view.set_name(s.name);
    view.set_grad(grads_.slice(0, s.offset, s.offset + s.numel).view(s.shape));
    *s.tensor = view;
  }
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
