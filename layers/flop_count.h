// Analytic FLOP count of one InfoMamba forward pass (docs/MODEL.md), per sample, from the
// model config alone: every GEMM, convolution and scan counted as 2 FLOPs per multiply-add.
// `bench` turns it into achieved TFLOP/s and MFU; docs/PERFORMANCE.md ("FLOP count") lists
// the terms and what is left out (elementwise work, norms, softmax, the losses).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "layers/model_config.h"

namespace im::layers {

// One line of the count: a named GEMM, convolution or scan, summed over the blocks.
struct FlopTerm {
  std::string name;   // e.g. "mixer.in_proj", "ssm.scan"
  int64_t flops = 0;  // per sample, forward
};

// The terms present under `cfg` (ablation switches drop theirs), in forward order.
std::vector<FlopTerm> forward_flop_terms(const ModelConfig& cfg);

// Sum of forward_flop_terms.
int64_t forward_flops_per_sample(const ModelConfig& cfg);

// Training counts as 3 x forward (backward = 2 x forward: the gradients with respect to
// both the input and the weights of every GEMM), the convention of PaLM's MFU.
int64_t training_flops_per_sample(const ModelConfig& cfg);

// Tokens L a sample becomes: (image_size / patch)^2 patches, or max_len for text.
int64_t tokens_per_sample(const ModelConfig& cfg);

}  // namespace im::layers
