#include "layers/module.h"

#include "core/error.h"

namespace im::layers {

Tensor& Module::register_parameter(const std::string& name, Tensor value, ParamOptions options) {
  for (const Param& p : params_)
    IM_CHECK(p.name != name, "parameter '", name, "' registered twice");
  value.set_requires_grad(true);
  params_.push_back({name, std::make_unique<Tensor>(std::move(value)), options});
  return *params_.back().tensor;
}

std::vector<NamedParameter> Module::named_parameters(const std::string& prefix) {
  std::vector<NamedParameter> out;
  for (Param& p : params_) out.push_back({prefix + p.name, p.tensor.get(), p.options});
  for (Child& c : children_) {
    // An unnamed child's parameters appear directly under this module's prefix.
    auto sub = c.module->named_parameters(c.name.empty() ? prefix : prefix + c.name + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (const NamedParameter& p : named_parameters()) n += p.tensor->numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (Child& c : children_) c.module->train(on);
}

}  // namespace im::layers
