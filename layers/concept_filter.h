// The global stream of MODEL.md §2: soft assignment of tokens to K learnable concepts
// (with MI-driven hash bucketing and a token-wise budget), mass-normalised pooling into
// concept space, mixing among the concepts, and scatter back to the tokens.
#pragma once

#include "layers/basic.h"
#include "layers/model_config.h"

namespace im::layers {

struct FilterOutput {
  Tensor global;     // G [B, L, d]
  Tensor hash_loss;  // scalar L_hash of this block (undefined without a hash head)
};

class ConceptFilter : public Module {
 public:
  ConceptFilter(const ModelConfig& cfg, int64_t seq_len, Generator& gen, DType dtype);
  FilterOutput forward(const Tensor& x, const ForwardContext& ctx);
  // The assignment A [B, L, K] of the last forward (for diagnostics and tests).
  const Tensor& last_assignment() const { return last_assignment_; }

 private:
  Tensor assignment(const Tensor& x, const ForwardContext& ctx, Tensor& hash_loss);

  FilterSwitches sw_;
  int64_t d_, dc_, k_, top_r_, k_min_, k_max_;
  double tau_;
  Linear* q_proj_ = nullptr;
  Linear* v_proj_;
  Tensor* centers_ = nullptr;       // C [K, dc]
  Tensor* bucket_embed_ = nullptr;  // Phi [H, dc]
  Tensor* static_assign_ = nullptr; // [L, K] logits when static_assign
  Tensor* mix_ = nullptr;           // M_mix [K, K]
  LayerNormModule* mix_norm_ = nullptr;
  Linear* mix_proj_ = nullptr;      // W_z
  Linear* out_proj_;                // W_o
  Tensor last_assignment_;
};

// Mean entropy term of MODEL.md §5.4 for hash probabilities P [B, L, H] (log_p = log P),
// over real tokens when `token_mask` [B, L] is given: -(H(P_bar) - mean_t H(P_t)).
Tensor hash_infomax_loss(const Tensor& probs, const Tensor& log_probs, const Tensor& token_mask,
                         const BatchReduce* batch = nullptr);

}  // namespace im::layers
