#include "layers/basic.h"

#include "core/ops.h"
#include "layers/init.h"

namespace im::layers {

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen, DType dtype,
               ParamOptions bias_options) {
  weight_ = &register_parameter("weight", init_fan_in_uniform({out, in}, in, gen, dtype),
                                {.weight_decay = true});
  if (bias) bias_ = &register_parameter("bias", Tensor::zeros({out}, dtype), bias_options);
}

Tensor Linear::forward(const Tensor& x) {
  // The bias rides in the GEMM's epilogue. A float32 bias of a bf16 layer
  // (ParamOptions::keep_float32) makes the output float32.
  return linear(x, *weight_, bias_ ? *bias_ : Tensor());
}

LayerNormModule::LayerNormModule(int64_t dim, DType dtype) {
  weight_ = &register_parameter("weight", Tensor::ones({dim}, dtype));
  bias_ = &register_parameter("bias", Tensor::zeros({dim}, dtype));
}

Tensor LayerNormModule::forward(const Tensor& x) {
  return layer_norm(x, *weight_, *bias_);
}

Mlp::Mlp(int64_t dim, int64_t hidden, Generator& gen, DType dtype) {
  fc1_ = &register_module("fc1", std::make_unique<Linear>(dim, hidden, true, gen, dtype));
  fc2_ = &register_module("fc2", std::make_unique<Linear>(hidden, dim, true, gen, dtype));
}

Tensor Mlp::forward(const Tensor& x) {
  return fc2_->forward(gelu_erf(fc1_->forward(x)));
}

}  // namespace im::layers
