#include "layers/flop_count.h"

namespace im::layers {

namespace {
// 2 FLOPs per multiply-add of an (m x k) by (k x n) product.
int64_t gemm(int64_t m, int64_t k, int64_t n) {
  return 2 * m * k * n;
}
}  // namespace

int64_t tokens_per_sample(const ModelConfig& cfg) {
  if (cfg.modality == "image") {
    const int64_t side = cfg.patch > 0 ? cfg.image_size / cfg.patch : 0;
    return side * side;
  }
  return cfg.max_len;
}

std::vector<FlopTerm> forward_flop_terms(const ModelConfig& cfg) {
  const int64_t L = tokens_per_sample(cfg), d = cfg.d_model, E = cfg.expand * d;
  const int64_t K = cfg.num_concepts, H = cfg.num_buckets, N = cfg.d_state;
  const int64_t R = (d + 15) / 16;  // dt rank, ceil(d / 16) (MODEL.md §3, layers::dt_rank)
  const int64_t blocks = cfg.depth;
  const bool scan = cfg.imf.ssm_path, global = cfg.imf.filter_path;
  const FilterSwitches& f = cfg.filter;
  std::vector<FlopTerm> t;
  auto per_block = [&](const char* name, int64_t flops) { t.push_back({name, blocks * flops}); };

  // Patch embedding: a p x p stride-p convolution, one (C p^2 -> d) product per patch.
  // A text model's token embedding is a table lookup: no FLOPs.
  if (cfg.modality == "image")
    t.push_back({"patch_embed", gemm(L, cfg.channels * cfg.patch * cfg.patch, d)});

  // W_in yields [u; z], or z alone when the global stream is the whole mixer.
  per_block("mixer.in_proj", gemm(L, d, scan || !global ? 2 * E : E));
  if (global) {
    if (!f.static_assign) {  // a static assignment is a parameter: no Q, scores or hash
      per_block("filter.q_proj", gemm(L, d, d));                   // d_c = d
      per_block("filter.scores", gemm(L, d, K));                   // S = Q C^T
      if (f.hash) per_block("filter.hash_logits", gemm(L, d, H));  // Q Phi^T
    }
    per_block("filter.v_proj", gemm(L, d, d));
    per_block("filter.aggregate", gemm(K, L, d));  // A^T V
    if (!f.no_mix) {
      per_block("filter.mix", gemm(K, K, d));       // M_mix LN(Z)
      per_block("filter.mix_proj", gemm(K, d, d));  // W_z
    }
    per_block("filter.scatter", gemm(L, K, d));                               // A Z~
    per_block("filter.out_proj", gemm(L, d, d));                              // W_o
    per_block("mixer.inject_proj", gemm(L, d, E));                            // W_gi
    if (scan && cfg.imf.inject) per_block("mixer.gate_proj", gemm(L, d, E));  // W_gamma
  }
  if (scan) {
    const int64_t dirs = cfg.bidirectional ? 2 : 1;
    per_block("ssm.conv1d", dirs * 2 * L * E * cfg.conv_kernel);  // depthwise: k per output
    per_block("ssm.x_proj", dirs * gemm(L, E, R + 2 * N));
    per_block("ssm.dt_proj", dirs * gemm(L, R, E));
    // Per token, channel and state: the update h = exp(dA) h + dB x and the readout
    // y += C h, one multiply-add each.
    per_block("ssm.scan", dirs * 2 * 2 * L * E * N);
  }
  per_block("mixer.out_proj", gemm(L, E, d));
  per_block("mlp", gemm(L, d, 4 * d) + gemm(L, 4 * d, d));

  // Once per sample after pooling: the classifier and the losses' stream projections.
  t.push_back({"head", gemm(1, d, cfg.num_classes)});
  if (global) t.push_back({"proj_g", gemm(1, E, cfg.d_proj)});
  if (scan) t.push_back({"proj_h", gemm(1, E, cfg.d_proj)});
  return t;
}

int64_t forward_flops_per_sample(const ModelConfig& cfg) {
  int64_t total = 0;
  for (const FlopTerm& term : forward_flop_terms(cfg)) total += term.flops;
  return total;
}

int64_t training_flops_per_sample(const ModelConfig& cfg) {
  return 3 * forward_flops_per_sample(cfg);
}

}  // namespace im::layers
