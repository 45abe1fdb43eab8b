// The training objective of MODEL.md §5:
//   L = L_CE + lambda_nce L_NCE + lambda_red L_red + lambda_hash L_hash
#pragma once

#include "core/tensor.h"
#include "layers/infomamba.h"
#include "layers/model_config.h"

namespace im::layers {

// Every loss is a statistic of the whole batch: with `batch` (data-parallel training) of the
// global batch, with the same value on every rank (layers/batch_reduce.h).

// Mean cross-entropy with label smoothing eps: (1-eps) NLL + eps mean_c(-log p_c).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing = 0.0,
                     const BatchReduce* batch = nullptr);
// InfoNCE against L2-normalised class prototypes at temperature tau (§5.2).
Tensor info_nce(const Tensor& r, const Tensor& prototypes, const Tensor& labels, double tau,
                const BatchReduce* batch = nullptr);
// ||Cov(r̂_g, r̂_h)||_F^2 / d_p with batch standardisation (§5.3).
Tensor redundancy_loss(const Tensor& r_g, const Tensor& r_h, const BatchReduce* batch = nullptr);

struct LossTerms {
  Tensor total;  // what backward runs on
  // The values, on the host: filled by compute_losses, or by read_values() when it was told
  // to defer (a GPU step reads them once, after the step is queued, not mid-step).
  double loss = 0, ce = 0, nce = 0, red = 0, hash = 0;
  // Detached, on the loss's device: total, ce, nce, red, hash (0 for a term switched off).
  Tensor values;
  void read_values();
};

// With `defer_read`, nothing waits for the device: the host values stay 0 until
// read_values().
LossTerms compute_losses(const ModelOutput& out, const Tensor& prototypes, const Tensor& labels,
                         const LossConfig& cfg, const BatchReduce* batch = nullptr,
                         bool defer_read = false);

struct Accuracy {
  int64_t top1 = 0, top5 = 0, count = 0;
};
Accuracy count_correct(const Tensor& logits, const Tensor& labels);

}  // namespace im::layers
