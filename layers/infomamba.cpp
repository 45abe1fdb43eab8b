#include "layers/infomamba.h"

#include "core/error.h"
#include "core/ops.h"
#include "layers/init.h"

namespace im::layers {

void validate_model_config(const ModelConfig& cfg) {
  IM_CHECK(cfg.modality == "image" || cfg.modality == "text", "model.modality must be 'image' ",
           "or 'text', got '", cfg.modality, "'");
  if (cfg.modality == "image") {
    IM_CHECK(cfg.patch > 0 && cfg.image_size % cfg.patch == 0, "model.image_size (", cfg.image_size,
             ") must be a multiple of model.patch (", cfg.patch, ")");
  } else {
    IM_CHECK(cfg.vocab_size > 0 && cfg.max_len > 0, "text models need model.vocab_size and ",
             "model.max_len > 0");
  }
  IM_CHECK(cfg.k_min <= cfg.k_max, "model.k_min (", cfg.k_min, ") must not exceed model.k_max (",
           cfg.k_max, ")");
  IM_CHECK(cfg.num_classes > 1, "model.num_classes must be at least 2, got ", cfg.num_classes);
}

Block::Block(const ModelConfig& cfg, int64_t seq_len, double drop_path, Generator& gen, DType dtype)
    : drop_path_(drop_path) {
  const int64_t d = cfg.d_model;
  norm1_ = &register_module("norm1", std::make_unique<LayerNormModule>(d, dtype));
  mixer_ =
      &register_module("mixer", std::make_unique<ImfMixer>(cfg, seq_len, cfg.depth, gen, dtype));
  norm2_ = &register_module("norm2", std::make_unique<LayerNormModule>(d, dtype));
  mlp_ = &register_module("mlp", std::make_unique<Mlp>(d, 4 * d, gen, dtype));
}

Tensor Block::forward(const Tensor& x, const ForwardContext& ctx, MixerOutput& mixer_out) {
  auto residual = [&](const Tensor& branch) {
    if (!is_training() || drop_path_ <= 0.0) return branch;
    IM_CHECK(ctx.gen != nullptr, "drop-path in training needs a generator in the context");
    if (ctx.batch && ctx.batch->global_size > 0)  // draw the global batch's mask
      return im::drop_path(branch, drop_path_, *ctx.gen, ctx.batch->offset, ctx.batch->global_size);
    return im::drop_path(branch, drop_path_, *ctx.gen);
  };
  mixer_out = mixer_->forward(norm1_->forward(x), ctx);
  Tensor h = add(x, residual(mixer_out.out));
  return add(h, residual(mlp_->forward(norm2_->forward(h))));
}

InfoMamba::InfoMamba(const ModelConfig& cfg, Generator& gen, DType dtype) : cfg_(cfg) {
  validate_model_config(cfg);
  const int64_t d = cfg.d_model;
  const ParamOptions decay{.weight_decay = true};
  if (cfg.modality == "image") {
    const int64_t p = cfg.patch, side = cfg.image_size / p;
    seq_len_ = side * side;
    const int64_t fan_in = cfg.channels * p * p;
    patch_weight_ = &register_parameter(
        "patch_embed.weight", init_fan_in_uniform({d, cfg.channels, p, p}, fan_in, gen, dtype),
        decay);
    patch_bias_ =
        &register_parameter("patch_embed.bias", init_fan_in_uniform({d}, fan_in, gen, dtype));
  } else {
    seq_len_ = cfg.max_len;
    token_embed_ =
        &register_parameter("token_embed", init_normal({cfg.vocab_size, d}, 0.02, gen, dtype));
  }
  pos_embed_ = &register_parameter("pos_embed", init_normal({seq_len_, d}, 0.02, gen, dtype));
  for (int64_t i = 0; i < cfg.depth; ++i) {
    // Stochastic depth grows linearly from 0 at the first block to drop_path at the last.
    const double rate = cfg.depth > 1 ? cfg.drop_path * i / (cfg.depth - 1) : cfg.drop_path;
    blocks_.push_back(&register_module("blocks." + std::to_string(i),
                                       std::make_unique<Block>(cfg, seq_len_, rate, gen, dtype)));
  }
  norm_ = &register_module("norm", std::make_unique<LayerNormModule>(d, dtype));
  head_ = &register_module("head", std::make_unique<Linear>(d, cfg.num_classes, true, gen, dtype));
  const int64_t E = cfg.expand * d;
  if (cfg.imf.filter_path)
    proj_g_ =
        &register_module("proj_g", std::make_unique<Linear>(E, cfg.d_proj, false, gen, dtype));
  if (cfg.imf.ssm_path)
    proj_h_ =
        &register_module("proj_h", std::make_unique<Linear>(E, cfg.d_proj, false, gen, dtype));
  prototypes_ = &register_parameter("prototypes",
                                    init_normal({cfg.num_classes, cfg.d_proj}, 1.0, gen, dtype));
}

Tensor InfoMamba::embed(const Tensor& input, Tensor& token_mask) {
  if (cfg_.modality == "image") {
    IM_CHECK(input.dim() == 4 && input.size(1) == cfg_.channels &&
                 input.size(2) == cfg_.image_size && input.size(3) == cfg_.image_size,
             "model expects images [B, ", cfg_.channels, ", ", cfg_.image_size, ", ",
             cfg_.image_size, "], got ", input.describe());
    const Tensor x = input.dtype() == pos_embed_->dtype() ? input : input.to(pos_embed_->dtype());
    Tensor t = conv2d(x, *patch_weight_, *patch_bias_, cfg_.patch, 0);  // [B, d, h, w]
    t = t.flatten(2).transpose(1, 2);                                   // [B, L, d]
    return add(t, *pos_embed_);
  }
  IM_CHECK(input.dim() == 2 && input.size(1) == seq_len_, "model expects token ids [B, ", seq_len_,
           "], got ", input.describe());
  if (cfg_.pad_id >= 0) {
    // Built on the host from the ids (a GPU batch's ids are copied back: B x L integers).
    const Tensor ids = input.to(Device::cpu()).to(DType::Int64).contiguous();
    std::vector<double> m(ids.numel());
    const int64_t* pid = ids.data<int64_t>();
    for (int64_t i = 0; i < ids.numel(); ++i) m[i] = pid[i] == cfg_.pad_id ? 0.0 : 1.0;
    token_mask =
        Tensor::from_vector(m, ids.shape()).to(pos_embed_->dtype()).to(pos_embed_->device());
  }
  return add(embedding(*token_embed_, input, cfg_.pad_id), *pos_embed_);
}

Tensor InfoMamba::pool(const Tensor& x, const Tensor& token_mask) {
  if (!token_mask.defined()) return mean(x, {1});
  const Tensor w = token_mask.unsqueeze(-1);
  return div(sum(mul(x, w), {1}), add(sum(w, {1}), 1e-12));
}

namespace {
Tensor l2_normalize(const Tensor& r) {
  return mul(r, rsqrt(add(sum(mul(r, r), {-1}, true), 1e-12)));
}
}  // namespace

ModelOutput InfoMamba::forward(const Tensor& input, const ForwardContext& outer) {
  ForwardContext ctx = outer;
  Tensor x = embed(input, ctx.token_mask);
  MixerOutput last;
  Tensor hash_total;
  int64_t hash_blocks = 0;
  for (Block* block : blocks_) {
    x = block->forward(x, ctx, last);
    if (last.hash_loss.defined()) {
      hash_total = hash_total.defined() ? add(hash_total, last.hash_loss) : last.hash_loss;
      ++hash_blocks;
    }
  }
  ModelOutput out;
  out.logits = head_->forward(pool(norm_->forward(x), ctx.token_mask));
  if (proj_g_) out.r_g = l2_normalize(proj_g_->forward(pool(last.g_hat, ctx.token_mask)));
  if (proj_h_) out.r_h = l2_normalize(proj_h_->forward(pool(last.ssm_output(), ctx.token_mask)));
  if (hash_blocks) out.hash_loss = mul(hash_total, 1.0 / hash_blocks);
  return out;
}

}  // namespace im::layers
