// The local stream of MODEL.md §3: per direction a causal depthwise conv + SiLU, the
// input-dependent (delta, B, C) projection, and the selective scan. Image and text
// classification scan both directions and average them; W_in lives in the mixer.
#pragma once

#include <vector>

#include "core/ops.h"
#include "layers/basic.h"
#include "layers/model_config.h"

namespace im::layers {

// One scan direction's parameters: conv_weight, conv_bias, x_proj, dt_proj, A_log, D,
// with the suffix "_b" for the backward direction (as Vision Mamba names them).
class ScanDirection : public Module {
 public:
  ScanDirection(const ModelConfig& cfg, const std::string& suffix, Generator& gen, DType dtype);
  // u_raw [B, L, E] before the conv; inject [B, L, E] or undefined; reverse scans from
  // the end. The scan's operands (conv, SiLU and the projections done), for
  // selective_scan_multi.
  ScanProblemArgs problem(const Tensor& u_raw, const Tensor& inject, const ForwardContext& ctx,
                          bool reverse);
  // This direction alone: y [B, L, E].
  Tensor forward(const Tensor& u_raw, const Tensor& inject, const ForwardContext& ctx,
                 bool reverse);

 private:
  int64_t rank_, state_;
  Tensor* conv_weight_;
  Tensor* conv_bias_;
  Linear* x_proj_;
  Linear* dt_proj_;
  Tensor* a_log_;
  Tensor* d_;
};

class SelectiveSsm : public Module {
 public:
  SelectiveSsm(const ModelConfig& cfg, Generator& gen, DType dtype);
  // Returns y [B, L, E] of each direction (forward, then backward when bidirectional),
  // scanned in one op; the stream's output is their mean (mean_of_directions), which the
  // mixer's fused gate takes apart.
  std::vector<Tensor> forward(const Tensor& u_raw, const Tensor& inject, const ForwardContext& ctx);

 private:
  ScanDirection* fwd_;
  ScanDirection* bwd_ = nullptr;
};

// y of a bidirectional scan: the mean of its directions (the one y when unidirectional).
Tensor mean_of_directions(const std::vector<Tensor>& ys);

// R = ceil(d / 16), the rank of the delta projection.
int64_t dt_rank(int64_t d_model);

}  // namespace im::layers
