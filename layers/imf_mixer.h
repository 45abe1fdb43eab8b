// The InfoMamba mixer with information-maximising fusion (MODEL.md §4): the global
// stream's feature g enters the SSM dynamics through a per-token, per-channel gate, and
// both streams meet again at the gated output.
#pragma once

#include "layers/basic.h"
#include "layers/concept_filter.h"
#include "layers/model_config.h"
#include "layers/selective_ssm.h"

namespace im::layers {

struct MixerOutput {
  Tensor out;                  // [B, L, d]
  Tensor g_hat;                // ĝ [B, L, E] (undefined without the global stream)
  std::vector<Tensor> y_dirs;  // the SSM's y [B, L, E] per scan direction (none without the scan)
  Tensor hash_loss;            // scalar, undefined without a hash head
  // The SSM stream's output y (the mean over directions; undefined without the scan).
  Tensor ssm_output() const;
};

class ImfMixer : public Module {
 public:
  ImfMixer(const ModelConfig& cfg, int64_t seq_len, int64_t depth, Generator& gen, DType dtype);
  MixerOutput forward(const Tensor& x, const ForwardContext& ctx);

 private:
  ImfSwitches sw_;
  int64_t inner_;
  Linear* in_proj_;  // W_in: d -> [u; z] (z only when ssm_path is off alone)
  SelectiveSsm* ssm_ = nullptr;
  ConceptFilter* filter_ = nullptr;
  Linear* inject_proj_ = nullptr;  // W_gi
  Linear* gate_proj_ = nullptr;    // W_gamma, b_gamma
  Tensor* alpha_h_ = nullptr;
  Tensor* alpha_g_ = nullptr;
  Linear* out_proj_;  // W_out
};

}  // namespace im::layers
