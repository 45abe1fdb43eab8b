// The InfoMamba classifier (MODEL.md §1): embedding, `depth` blocks
//   x <- x + DropPath(Mixer(LN(x)));  x <- x + DropPath(MLP(LN(x)))
// a final LN, mean pooling over (real) tokens and a linear head, plus the two stream
// projections and class prototypes that the information-theoretic losses use.
#pragma once

#include <vector>

#include "layers/basic.h"
#include "layers/imf_mixer.h"
#include "layers/model_config.h"

namespace im::layers {

struct ModelOutput {
  Tensor logits;     // [B, classes]
  Tensor r_g;        // [B, d_p], L2-normalised global stream (undefined if off)
  Tensor r_h;        // [B, d_p], L2-normalised SSM stream (undefined if off)
  Tensor hash_loss;  // mean L_hash over blocks with a hash head (undefined if none)
};

class Block : public Module {
 public:
  Block(const ModelConfig& cfg, int64_t seq_len, double drop_path, Generator& gen, DType dtype);
  // Returns the new residual stream; `mixer_out` receives the mixer's side outputs.
  Tensor forward(const Tensor& x, const ForwardContext& ctx, MixerOutput& mixer_out);

 private:
  double drop_path_;
  LayerNormModule* norm1_;
  ImfMixer* mixer_;
  LayerNormModule* norm2_;
  Mlp* mlp_;
};

class InfoMamba : public Module {
 public:
  InfoMamba(const ModelConfig& cfg, Generator& gen, DType dtype = DType::Float32);
  // Images: float [B, C, H, W]. Text: int64 ids [B, L].
  ModelOutput forward(const Tensor& input, const ForwardContext& ctx);
  const ModelConfig& config() const { return cfg_; }
  int64_t seq_len() const { return seq_len_; }
  const Tensor& prototypes() const { return *prototypes_; }

 private:
  Tensor embed(const Tensor& input, Tensor& token_mask);
  static Tensor pool(const Tensor& x, const Tensor& token_mask);

  ModelConfig cfg_;
  int64_t seq_len_;
  Tensor* patch_weight_ = nullptr;  // [d, C, p, p]
  Tensor* patch_bias_ = nullptr;
  Tensor* token_embed_ = nullptr;   // [vocab, d]
  Tensor* pos_embed_;               // [L, d]
  std::vector<Block*> blocks_;
  LayerNormModule* norm_;
  Linear* head_;
  Linear* proj_g_ = nullptr;
  Linear* proj_h_ = nullptr;
  Tensor* prototypes_;
};

// Checks a config for consistency (image size divisible by the patch, k_min <= k_max, ...);
// throws im::Error naming the offending keys.
void validate_model_config(const ModelConfig& cfg);

}  // namespace im::layers
