#include "layers/imf_mixer.h"

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace im::layers {

ImfMixer::ImfMixer(const ModelConfig& cfg, int64_t seq_len, int64_t depth, Generator& gen,
                   DType dtype)
    : sw_(cfg.imf), inner_(cfg.expand * cfg.d_model) {
  const int64_t d = cfg.d_model, E = inner_;
  const bool scan = sw_.ssm_path, global = sw_.filter_path;
  // W_in yields z alone only when the global path is the whole mixer.
  const bool needs_u = scan || !global;
  in_proj_ = &register_module("in_proj",
                              std::make_unique<Linear>(d, needs_u ? 2 * E : E, false, gen, dtype));
  if (scan) ssm_ = &register_module("ssm", std::make_unique<SelectiveSsm>(cfg, gen, dtype));
  if (global) {
    filter_ = &register_module("filter", std::make_unique<ConceptFilter>(cfg, seq_len, gen, dtype));
    inject_proj_ = &register_module("inject_proj", std::make_unique<Linear>(d, E, false, gen, dtype));
    if (scan && sw_.inject) {
      gate_proj_ = &register_module("gate_proj", std::make_unique<Linear>(d, E, true, gen, dtype));
      gate_proj_->bias().fill_(-2.0);  // b_gamma = -2: the gate starts mostly closed
    }
    alpha_g_ = &register_parameter("alpha_g", Tensor::full({E}, 0.1, dtype));
  }
  if (scan) alpha_h_ = &register_parameter("alpha_h", Tensor::ones({E}, dtype));
  out_proj_ = &register_module("out_proj", std::make_unique<Linear>(E, d, false, gen, dtype));
  // W_out scaled by 1/sqrt(2 depth) so the residual stream's variance stays bounded.
  NoGradGuard no_grad;
  out_proj_->weight().copy_(mul(out_proj_->weight(), 1.0 / std::sqrt(2.0 * depth)));
}

MixerOutput ImfMixer::forward(const Tensor& x, const ForwardContext& ctx) {
  MixerOutput out;
  const Tensor uz = in_proj_->forward(x);
  const bool scan = ssm_ != nullptr, global = filter_ != nullptr;
  Tensor u, z;
  if (scan || !global) {
    const std::vector<Tensor> parts = split(uz, {inner_, inner_}, -1);
    u = parts[0];
    z = parts[1];
  } else {
    z = uz;
  }
  const Tensor gate = silu(z);
  if (global) {
    FilterOutput f = filter_->forward(x, ctx);
    out.hash_loss = f.hash_loss;
    out.g_hat = inject_proj_->forward(f.global);
  }
  Tensor fused;
  if (scan) {
    Tensor inject;
    if (gate_proj_) inject = mul(sigmoid(gate_proj_->forward(x)), out.g_hat);  // gamma ⊙ ĝ
    out.y = ssm_->forward(u, inject, ctx);
    fused = mul(out.y, *alpha_h_);
    if (global) fused = add(fused, mul(out.g_hat, *alpha_g_));
  } else if (global) {
    fused = mul(out.g_hat, *alpha_g_);
  } else {
    fused = u;  // both paths off: a gated MLP, SiLU(z) ⊙ u
  }
  out.out = out_proj_->forward(mul(fused, gate));
  return out;
}

}  // namespace im::layers
