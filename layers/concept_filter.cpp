#include "layers/concept_filter.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "layers/concept_masks.h"
#include "layers/init.h"

namespace im::layers {

namespace {
constexpr double kAggregationEps = 1e-6;  // MODEL.md: epsilon of the concept aggregation
}

ConceptFilter::ConceptFilter(const ModelConfig& cfg, int64_t seq_len, Generator& gen, DType dtype)
    : sw_(cfg.filter),
      d_(cfg.d_model),
      dc_(cfg.d_model),
      k_(cfg.num_concepts),
      top_r_(cfg.top_r),
      k_min_(cfg.k_min),
      k_max_(cfg.k_max),
      tau_(cfg.tau) {
  const ParamOptions decay{.weight_decay = true};
  if (sw_.static_assign) {
    static_assign_ =
        &register_parameter("assign", init_normal({seq_len, k_}, 0.02, gen, dtype), decay);
  } else {
    q_proj_ = &register_module("q_proj", std::make_unique<Linear>(d_, dc_, false, gen, dtype));
    centers_ = &register_parameter("centers", init_normal({k_, dc_}, 1.0, gen, dtype), decay);
    if (sw_.hash)
      bucket_embed_ = &register_parameter(
          "bucket_embed", init_normal({cfg.num_buckets, dc_}, 1.0, gen, dtype), decay);
  }
  v_proj_ = &register_module("v_proj", std::make_unique<Linear>(d_, d_, false, gen, dtype));
  if (!sw_.no_mix) {
    Tensor eye = Tensor::zeros({k_, k_}, dtype);
    for (int64_t i = 0; i < k_; ++i) eye.select(0, i).select(0, i).fill_(1.0);
    mix_ = &register_parameter("mix", eye, decay);
    mix_norm_ = &register_module("mix_norm", std::make_unique<LayerNormModule>(d_, dtype));
    mix_proj_ = &register_module("mix_proj", std::make_unique<Linear>(d_, d_, false, gen, dtype));
  }
  out_proj_ = &register_module("out_proj", std::make_unique<Linear>(d_, d_, false, gen, dtype));
}

Tensor ConceptFilter::assignment(const Tensor& x, const ForwardContext& ctx, Tensor& hash_loss) {
  const int64_t B = x.size(0), L = x.size(1);
  if (sw_.static_assign) {
    IM_CHECK(static_assign_->size(0) == L, "concept filter: static assignment was built for ",
             static_assign_->size(0), " tokens, input has ", L);
    return softmax(*static_assign_, -1).unsqueeze(0).expand({B, L, k_});
  }
  const Tensor q = q_proj_->forward(x);  // [B, L, dc]
  const double scale = 1.0 / std::sqrt(static_cast<double>(dc_));
  Tensor logits = mul(matmul(q, centers_->transpose(0, 1)), scale / tau_);  // S [B, L, K]
  Tensor mask;
  if (sw_.hash) {
    const Tensor hash_logits = mul(matmul(q, bucket_embed_->transpose(0, 1)), scale);
    const Tensor log_p = log_softmax(hash_logits, -1);
    const Tensor p = exp(log_p);
    hash_loss = hash_infomax_loss(p, log_p, ctx.token_mask, ctx.batch);
    NoGradGuard no_grad;
    mask = bucket_mask(p, concept_bucket_ids(*centers_, *bucket_embed_), top_r_);
  }
  if (sw_.budget) {
    NoGradGuard no_grad;
    const Tensor masked = mask.defined()
                              ? masked_fill(logits, mask, -std::numeric_limits<double>::infinity())
                              : logits;
    mask = budget_mask(masked, k_min_, k_max_);  // includes the bucket mask's entries
  }
  if (mask.defined()) logits = masked_fill(logits, mask, -std::numeric_limits<double>::infinity());
  return softmax(logits, -1);
}

FilterOutput ConceptFilter::forward(const Tensor& x, const ForwardContext& ctx) {
  FilterOutput out;
  Tensor a = assignment(x, ctx, out.hash_loss);                            // A [B, L, K]
  if (ctx.token_mask.defined()) a = mul(a, ctx.token_mask.unsqueeze(-1));  // pads pool nothing
  last_assignment_ = a.detach();
  const Tensor v = v_proj_->forward(x);                                 // [B, L, d]
  const Tensor at = a.transpose(1, 2);                                  // [B, K, L]
  const Tensor mass = add(sum(a, {1}).unsqueeze(-1), kAggregationEps);  // [B, K, 1]
  Tensor z = div(matmul(at, v), mass);                                  // Z [B, K, d]
  if (!sw_.no_mix) z = add(z, mix_proj_->forward(gelu_erf(matmul(*mix_, mix_norm_->forward(z)))));
  out.global = out_proj_->forward(matmul(a, z));  // G = A Z~ W_o
  return out;
}

Tensor hash_infomax_loss(const Tensor& probs, const Tensor& log_probs, const Tensor& token_mask,
                         const BatchReduce* batch) {
  // H(P_t) per token, then the mean over the (real) tokens of the global batch; P_bar
  // over the same tokens. Sums are taken locally, then over the ranks.
  Tensor token_entropy = neg(sum(mul(probs, log_probs), {-1}));  // [B, L]
  Tensor entropy_sum, p_sum;
  double count = 0;
  if (token_mask.defined()) {
    count = sum(token_mask.detach()).item();
    entropy_sum = sum(mul(token_entropy, token_mask));
    p_sum = sum(mul(probs, token_mask.unsqueeze(-1)), {0, 1});
  } else {
    count = static_cast<double>(token_entropy.numel());
    entropy_sum = sum(token_entropy);
    p_sum = sum(probs, {0, 1});
  }
  const double inv_count = 1.0 / global_sum(count, batch);
  const Tensor mean_entropy = mul(global_sum(entropy_sum, batch), inv_count);
  const Tensor p_bar = mul(global_sum(p_sum, batch), inv_count);
  const Tensor marginal_entropy = neg(sum(mul(p_bar, log(p_bar))));
  return neg(sub(marginal_entropy, mean_entropy));
}

}  // namespace im::layers
