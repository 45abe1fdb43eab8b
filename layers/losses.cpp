#include "layers/losses.h"

#include <algorithm>
#include <numeric>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace im::layers {

namespace {
constexpr double kStandardiseEps = 1e-5;  // MODEL.md: epsilon of the redundancy loss
constexpr double kVarianceFloor = 1e-12;  // keeps d sqrt(var) finite at var = 0

// Losses are computed in float32 at least: a bfloat16 model's outputs are widened here,
// so log-softmax, the batch sums and the loss values keep float precision (gradients
// flow back through the cast in bfloat16).
Tensor widened(const Tensor& t) {
  return t.defined() && t.dtype() == DType::BFloat16 ? t.to(DType::Float32) : t;
}

Tensor labels_as_index(const Tensor& labels, int64_t batch) {
  IM_CHECK(labels.dim() == 1 && labels.size(0) == batch, "labels must be [", batch, "], got ",
           labels.describe());
  return labels.to(DType::Int64).unsqueeze(1);
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing,
                     const BatchReduce* batch) {
  const int64_t local = logits.size(0), classes = logits.size(1);
  const double inv_batch = 1.0 / static_cast<double>(global_batch_size(local, batch));
  const Tensor logp = log_softmax(logits, -1);
  // The batch sum of each sample's loss, then (over the ranks) the global mean.
  Tensor loss_sum = neg(sum(gather(logp, 1, labels_as_index(labels, local))));
  if (label_smoothing != 0.0) {
    const Tensor uniform_sum = neg(mul(sum(logp), 1.0 / static_cast<double>(classes)));
    loss_sum = add(mul(loss_sum, 1.0 - label_smoothing), mul(uniform_sum, label_smoothing));
  }
  return mul(global_sum(loss_sum, batch), inv_batch);
}

Tensor info_nce(const Tensor& r, const Tensor& prototypes, const Tensor& labels, double tau,
                const BatchReduce* batch) {
  const Tensor p = mul(prototypes, rsqrt(add(sum(mul(prototypes, prototypes), {-1}, true), 1e-12)));
  const Tensor logits = mul(matmul(r, p.transpose(0, 1)), 1.0 / tau);
  return cross_entropy(logits, labels, 0.0, batch);
}

Tensor redundancy_loss(const Tensor& r_g, const Tensor& r_h, const BatchReduce* batch) {
  const int64_t dp = r_g.size(1);
  const double inv_batch = 1.0 / static_cast<double>(global_batch_size(r_g.size(0), batch));
  // Mean and biased variance over the global batch: local sums, then over the ranks.
  auto standardise = [&](const Tensor& r) {
    const Tensor mu = mul(global_sum(sum(r, {0}, true), batch), inv_batch);
    const Tensor centred = sub(r, mu);
    const Tensor variance =
        mul(global_sum(sum(mul(centred, centred), {0}, true), batch), inv_batch);
    // σ_B = sqrt(var + 1e-12): where a column's values are all equal (var = 0, which
    // bf16-rounded projections reach), sqrt's derivative would be infinite and 0 · inf a
    // NaN; the true gradient there is finite. The shift is below 1e-6 of σ_B + ε.
    return div(centred, add(sqrt(add(variance, kVarianceFloor)), kStandardiseEps));
  };
  const Tensor cov =
      mul(global_sum(matmul(standardise(r_g).transpose(0, 1), standardise(r_h)), batch), inv_batch);
  return mul(sum(mul(cov, cov)), 1.0 / static_cast<double>(dp));
}

void LossTerms::read_values() {
  const Tensor host = values.to(Device::cpu()).to(DType::Float64);
  const double* v = host.data<double>();
  loss = v[0], ce = v[1], nce = v[2], red = v[3], hash = v[4];
}

LossTerms compute_losses(const ModelOutput& out, const Tensor& prototypes, const Tensor& labels,
                         const LossConfig& cfg, const BatchReduce* batch, bool defer_read) {
  LossTerms t;
  const Tensor r_g = widened(out.r_g), r_h = widened(out.r_h), hash_loss = widened(out.hash_loss);
  const Tensor protos = widened(prototypes);
  Tensor ce = cross_entropy(widened(out.logits), labels, cfg.label_smoothing, batch);
  const Tensor off = Tensor::zeros({}, ce.dtype(), ce.device());
  Tensor nce_value = off, red_value = off, hash_value = off;
  t.total = ce;
  if (cfg.lambda_nce > 0) {
    // With a stream switched off, L_NCE averages the streams present.
    Tensor nce;
    int streams = 0;
    for (const Tensor* r : {&r_g, &r_h}) {
      if (!r->defined()) continue;
      Tensor term = info_nce(*r, protos, labels, cfg.tau_nce, batch);
      nce = nce.defined() ? add(nce, term) : term;
      ++streams;
    }
    if (streams) {
      nce = mul(nce, 1.0 / streams);
      nce_value = nce;
      t.total = add(t.total, mul(nce, cfg.lambda_nce));
    }
  }
  if (cfg.lambda_red > 0 && r_g.defined() && r_h.defined() &&
      global_batch_size(r_g.size(0), batch) > 1) {
    Tensor red = redundancy_loss(r_g, r_h, batch);
    red_value = red;
    t.total = add(t.total, mul(red, cfg.lambda_red));
  }
  if (cfg.lambda_hash > 0 && hash_loss.defined()) {
    hash_value = hash_loss;
    t.total = add(t.total, mul(hash_loss, cfg.lambda_hash));
  }
  {
    NoGradGuard no_grad;  // one tensor, so reading the five values is one copy
    std::vector<Tensor> parts;
    for (const Tensor* v : {&t.total, &ce, &nce_value, &red_value, &hash_value})
      parts.push_back(v->detach().reshape({1}).to(ce.dtype()));
    t.values = concat(parts, 0);
  }
  if (!defer_read) t.read_values();
  return t;
}

Accuracy count_correct(const Tensor& logits, const Tensor& labels) {
  const Tensor l = logits.detach().to(Device::cpu()).contiguous().to(DType::Float64);
  const Tensor y = labels.to(Device::cpu()).to(DType::Int64);
  const int64_t batch = l.size(0), classes = l.size(1);
  const double* pl = l.data<double>();
  const int64_t* py = y.data<int64_t>();
  Accuracy acc;
  acc.count = batch;
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = pl + b * classes;
    const double target = row[py[b]];
    int64_t higher = 0;  // classes ranked above the label (ties count against it)
    for (int64_t c = 0; c < classes; ++c)
      if (c != py[b] && (row[c] > target || (row[c] == target && c < py[b]))) ++higher;
    acc.top1 += higher < 1;
    acc.top5 += higher < 5;
  }
  return acc;
}

}  // namespace im::layers
