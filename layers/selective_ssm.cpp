#include "layers/selective_ssm.h"

#include <cmath>

#include "core/ops.h"
#include "layers/init.h"

namespace im::layers {

int64_t dt_rank(int64_t d_model) {
  return (d_model + 15) / 16;
}

ScanDirection::ScanDirection(const ModelConfig& cfg, const std::string& suffix, Generator& gen,
                             DType dtype)
    : rank_(dt_rank(cfg.d_model)), state_(cfg.d_state) {
  const int64_t E = cfg.expand * cfg.d_model, K = cfg.conv_kernel;
  conv_weight_ = &register_parameter(
      "conv_weight" + suffix, init_fan_in_uniform({E, K}, K, gen, dtype), {.weight_decay = true});
  conv_bias_ = &register_parameter("conv_bias" + suffix, init_fan_in_uniform({E}, K, gen, dtype));
  x_proj_ = &register_module("x_proj" + suffix,
                             std::make_unique<Linear>(E, rank_ + 2 * state_, false, gen, dtype));
  dt_proj_ = &register_module(
      "dt_proj" + suffix,
      std::make_unique<Linear>(rank_, E, true, gen, dtype, ParamOptions{.keep_float32 = true}));
  // Mamba's delta initialisation: U(+-1/sqrt(R)) weights, bias = softplus^-1(dt).
  const double bound = 1.0 / std::sqrt(static_cast<double>(rank_));
  dt_proj_->weight().copy_(rand_uniform({E, rank_}, gen, -bound, bound, dtype));
  dt_proj_->bias().copy_(init_dt_bias(E, gen, dtype));
  a_log_ = &register_parameter(suffix.empty() ? "A_log" : "A" + suffix + "_log",
                               init_a_log(E, state_, dtype), {.keep_float32 = true});
  d_ = &register_parameter("D" + suffix, Tensor::ones({E}, dtype), {.keep_float32 = true});
}

ScanProblemArgs ScanDirection::problem(const Tensor& u_raw, const Tensor& inject,
                                       const ForwardContext& ctx, bool reverse) {
  Tensor u = u_raw;
  if (ctx.token_mask.defined()) u = mul(u, ctx.token_mask.unsqueeze(-1));  // pads enter as 0
  // The conv is causal in scan order (anti-causal in time for the backward direction) and
  // SiLU follows it, both inside one kernel.
  const Tensor uc =
      causal_depthwise_conv1d(u, *conv_weight_, *conv_bias_, {.reverse = reverse, .silu = true});
  const std::vector<Tensor> parts = split(x_proj_->forward(uc), {rank_, state_, state_}, -1);
  ScanProblemArgs p{.u = uc,
                    .delta = Tensor(),
                    .A = neg(exp(*a_log_)),
                    .Bm = parts[1],
                    .Cm = parts[2],
                    .D = *d_,
                    .opts = {.inject = inject, .reverse = reverse}};
  if (!ctx.token_mask.defined()) {
    // Δ = softplus(W_Δ s + b_Δ) inside the scan (in float, from the float32 b_Δ), so the
    // bias add and the softplus make no passes of their own over [B, L, E].
    p.delta = matmul(parts[0], dt_proj_->weight().transpose(0, 1));
    p.opts.delta_bias = dt_proj_->bias();
    p.opts.delta_softplus = true;
    return p;
  }
  // Padded text: Δ is zeroed at the pads (h passes them unchanged), so Δ is built here.
  // Under bf16 the float32 b_Δ makes Δ float32 through the softplus; the scan then takes
  // Δ in its inputs' dtype, A and D in float32 (MODEL.md §3).
  p.delta = mul(softplus(dt_proj_->forward(parts[0])).to(uc.dtype()), ctx.token_mask.unsqueeze(-1));
  return p;
}

Tensor ScanDirection::forward(const Tensor& u_raw, const Tensor& inject, const ForwardContext& ctx,
                              bool reverse) {
  return selective_scan_multi({problem(u_raw, inject, ctx, reverse)})[0];
}

SelectiveSsm::SelectiveSsm(const ModelConfig& cfg, Generator& gen, DType dtype) {
  // Unnamed children: parameters read "ssm.A_log" and "ssm.A_b_log".
  fwd_ = &register_module("", std::make_unique<ScanDirection>(cfg, "", gen, dtype));
  if (cfg.bidirectional)
    bwd_ = &register_module("", std::make_unique<ScanDirection>(cfg, "_b", gen, dtype));
}

std::vector<Tensor> SelectiveSsm::forward(const Tensor& u_raw, const Tensor& inject,
                                          const ForwardContext& ctx) {
  std::vector<ScanProblemArgs> problems{fwd_->problem(u_raw, inject, ctx, false)};
  if (bwd_) problems.push_back(bwd_->problem(u_raw, inject, ctx, true));
  return selective_scan_multi(problems);  // both directions in one launch
}

Tensor mean_of_directions(const std::vector<Tensor>& ys) {
  return ys.size() == 1 ? ys[0] : mul(add(ys[0], ys[1]), 0.5);
}

}  // namespace im::layers
