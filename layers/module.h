// Module: a node of the model tree with named parameters and sub-modules. Parameter
// names are dotted paths built from registration names ("blocks.3.mixer.ssm.A_log"),
// in registration order, which is also the order of the flat parameter buffer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace im::layers {

struct ParamOptions {
  // Decoupled weight decay applies to matrices (linear, conv, concept and hash tables);
  // norms, biases, embeddings, A_log, D, gains and prototypes are exempt (MODEL.md).
  bool weight_decay = false;
  // Under bf16 training the model computes with this parameter in float32, not with a
  // bfloat16 copy (MODEL.md §3: A_log, D and b_dt, which set the scan's decay rates).
  bool keep_float32 = false;
};

struct NamedParameter {
  std::string name;
  Tensor* tensor;  // points into the owning module, so stores can rebind it
  ParamOptions options;
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  std::vector<NamedParameter> named_parameters(const std::string& prefix = "");
  int64_t num_parameters();
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 protected:
  // Registers a leaf parameter (requires grad) and returns a reference to it.
  Tensor& register_parameter(const std::string& name, Tensor value, ParamOptions options = {});
  template <typename M>
  M& register_module(const std::string& name, std::unique_ptr<M> module) {
    M& ref = *module;
    children_.push_back({name, std::move(module)});
    return ref;
  }

 private:
  struct Param {
    std::string name;
    std::unique_ptr<Tensor> tensor;  // stable address for NamedParameter::tensor
    ParamOptions options;
  };
  struct Child {
    std::string name;
    std::unique_ptr<Module> module;
  };
  std::vector<Param> params_;
  std::vector<Child> children_;
  bool training_ = true;
};

}  // namespace im::layers
