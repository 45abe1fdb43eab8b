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
    inject_proj_ =
        &register_module("inject_proj", std::make_unique<Linear>(d, E, false, gen, dtype));
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
  if (global) {
    FilterOutput f = filter_->forward(x, ctx);
    out.hash_loss = f.hash_loss;
    out.g_hat = inject_proj_->forward(f.global);
  }
  // The gated output (alpha_h ⊙ y + alpha_g ⊙ ĝ) ⊙ SiLU(z) in one fused op; y is the mean
  // of the scan directions, which the op averages itself.
  if (scan) {
    Tensor inject;
    if (gate_proj_)  // gamma ⊙ ĝ, gamma = sigmoid(W_gamma x + b_gamma)
      inject = sigmoid_gate(matmul(x, gate_proj_->weight().transpose(0, 1)), gate_proj_->bias(),
                            out.g_hat);
    out.y_dirs = ssm_->forward(u, inject, ctx);
    out.out = out_proj_->forward(
        gated_fusion(out.y_dirs, out.g_hat, z, *alpha_h_, global ? *alpha_g_ : Tensor()));
  } else if (global) {
    out.out = out_proj_->forward(gated_fusion({}, out.g_hat, z, Tensor(), *alpha_g_));
  } else {
    out.out = out_proj_->forward(gated_fusion({u}, Tensor(), z, Tensor(), Tensor()));  // gated MLP
  }
  return out;
}

Tensor MixerOutput::ssm_output() const {
  return y_dirs.empty() ? Tensor() : mean_of_directions(y_dirs);
}

}  // namespace im::layers
