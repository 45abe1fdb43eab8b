// The discrete selections of the concept filter (MODEL.md §2 steps 3-4). They are
// constants in backward: computed without grad from current values, returned as uint8
// masks (1 = the logit is set to -inf).
#pragma once

#include <vector>

#include "core/tensor.h"

namespace im::layers {

// beta(k) = argmax_h <c_k, phi_h> for centres [K, dc] and bucket embeddings [H, dc].
std::vector<int64_t> concept_buckets(const Tensor& centers, const Tensor& bucket_embed);
// The same as an int64 [K] tensor on the centres' device: a GPU step never reads it back
// (a read would stall the stream and cannot be captured into a CUDA graph).
Tensor concept_bucket_ids(const Tensor& centers, const Tensor& bucket_embed);

// Masks concept k for token t unless beta(k) is among the top_r buckets of P[t]
// (hash probabilities [B, L, H]). A token whose candidate set would be empty keeps all.
Tensor bucket_mask(const Tensor& hash_probs, const std::vector<int64_t>& buckets, int64_t top_r);
// The same with beta from concept_bucket_ids (values in [0, H) by construction).
Tensor bucket_mask(const Tensor& hash_probs, const Tensor& buckets, int64_t top_r);

// Token-wise budget over logits [B, L, K] (already -inf where masked): u_t is the
// normalised entropy of softmax(logits_t); k_t = clamp(ceil(k_min + (k_max-k_min) u_t), 1, K)
// entries with the largest logits are kept (ties: lower index). Returns the mask of the
// rest, including entries that were already masked.
Tensor budget_mask(const Tensor& masked_logits, int64_t k_min, int64_t k_max);

}  // namespace im::layers
