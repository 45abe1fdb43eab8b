// Building blocks: Linear, LayerNorm, MLP, and the forward context every module reads.
#pragma once

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/batch_reduce.h"
#include "layers/module.h"

namespace im::layers {

// What a forward pass needs besides its input: randomness for drop-path, for text a mask
// of real (non-pad) tokens, and in data-parallel training where the local batch sits in
// the global one.
struct ForwardContext {
  Generator* gen = nullptr;  // required in training when drop-path is on
  Tensor token_mask;         // [B, L] in the compute dtype, 1 = real token; undefined = all real
  const BatchReduce* batch = nullptr;  // null: the local batch is the whole batch
};

class Linear : public Module {
 public:
  // Weight stored (out, in) as PyTorch does; bias optional.
  // `bias_options` may keep the bias in float32 under bf16 training; the output is then
  // float32 too (the bias is added in float32).
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, DType dtype,
         ParamOptions bias_options = {});
  Tensor forward(const Tensor& x);
  Tensor& weight() { return *weight_; }
  Tensor& bias() { return *bias_; }

 private:
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

class LayerNormModule : public Module {
 public:
  LayerNormModule(int64_t dim, DType dtype);
  Tensor forward(const Tensor& x);

 private:
  Tensor* weight_;
  Tensor* bias_;
};

// Linear(d, hidden) -> GELU (erf form) -> Linear(hidden, d).
class Mlp : public Module {
 public:
  Mlp(int64_t dim, int64_t hidden, Generator& gen, DType dtype);
  Tensor forward(const Tensor& x);

 private:
  Linear* fc1_;
  Linear* fc2_;
};

}  // namespace im::layers
