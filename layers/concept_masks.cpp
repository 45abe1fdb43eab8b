#include "layers/concept_masks.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/dispatch.h"
#include "core/error.h"

#if IM_WITH_CUDA
#include "kernels/cuda/concept_masks.h"
#endif

namespace im::layers {

#if IM_WITH_CUDA
namespace {

// A CUDA tensor in a dtype the kernels take (float32, float64 or bfloat16), contiguous.
// Other dtypes go to float64, as the CPU code converts everything.
Tensor cuda_operand(const Tensor& t, DType dtype) {
  const Tensor d = t.detach();
  return (d.dtype() == dtype ? d : d.to(dtype)).contiguous();
}

// The kernels read every floating dtype as stored (each widens to double exactly).
DType cuda_compute_dtype(const Tensor& t) {
  return is_floating(t.dtype()) ? t.dtype() : DType::Float64;
}

Tensor concept_buckets_cuda(const Tensor& centers, const Tensor& bucket_embed) {
  IM_CHECK(bucket_embed.device() == centers.device(), "concept_buckets: centers ",
           centers.describe(), " and bucket embeddings ", bucket_embed.describe(),
           " are on different devices");
  // Both operands in one dtype: theirs when they agree, float64 otherwise (the kernel
  // computes in double either way, and every floating dtype widens to it exactly).
  const DType dt =
      centers.dtype() == bucket_embed.dtype() ? cuda_compute_dtype(centers) : DType::Float64;
  const Tensor c = cuda_operand(centers, dt), phi = cuda_operand(bucket_embed, dt);
  const int64_t K = c.size(0), H = phi.size(0), dc = c.size(1);
  const Tensor out = Tensor::empty({K}, DType::Int64, c.device());
  dispatch_compute(dt, c.device(), "concept_buckets", [&]<typename T>() {
    kernels::cuda::concept_buckets<T>(c.data<T>(), phi.data<T>(), out.data<int64_t>(), K, H, dc);
  });
  return out;
}

// `b`: int64 [K] on the device, every value in [0, H) (the kernel indexes with them).
Tensor bucket_mask_cuda(const Tensor& hash_probs, const Tensor& b, int64_t top_r) {
  const DType dt = cuda_compute_dtype(hash_probs);
  const Tensor p = cuda_operand(hash_probs, dt);
  const int64_t B = p.size(0), L = p.size(1), H = p.size(2);
  const int64_t K = b.numel();
  IM_CHECK(b.dtype() == DType::Int64 && b.device() == p.device() && b.is_contiguous(),
           "bucket_mask: buckets ", b.describe(), " must be contiguous int64 on ",
           p.device().str());
  Tensor mask = Tensor::empty({B, L, K}, DType::UInt8, p.device());
  if (K == 0) return mask;
  dispatch_compute(dt, p.device(), "bucket_mask", [&]<typename T>() {
    kernels::cuda::bucket_mask<T>(p.data<T>(), b.data<int64_t>(), mask.data<uint8_t>(), B * L, H, K,
                                  top_r);
  });
  return mask;
}

Tensor budget_mask_cuda(const Tensor& masked_logits, int64_t k_min, int64_t k_max) {
  const DType dt = cuda_compute_dtype(masked_logits);
  const Tensor s = cuda_operand(masked_logits, dt);
  const int64_t K = s.size(-1), rows = K > 0 ? s.numel() / K : 0;
  Tensor mask = Tensor::empty(s.shape(), DType::UInt8, s.device());
  // The CPU code's log(K), computed on the host as it does.
  const double log_k = K > 1 ? std::log(static_cast<double>(K)) : 1.0;
  dispatch_compute(dt, s.device(), "budget_mask", [&]<typename T>() {
    kernels::cuda::budget_mask<T>(s.data<T>(), mask.data<uint8_t>(), rows, K, k_min, k_max, log_k);
  });
  return mask;
}

}  // namespace
#endif

Tensor concept_bucket_ids(const Tensor& centers, const Tensor& bucket_embed) {
#if IM_WITH_CUDA
  if (centers.device().is_cuda()) return concept_buckets_cuda(centers, bucket_embed);
#endif
  const std::vector<int64_t> ids = concept_buckets(centers, bucket_embed);
  return Tensor::from_vector<int64_t>(ids, {static_cast<int64_t>(ids.size())});
}

std::vector<int64_t> concept_buckets(const Tensor& centers, const Tensor& bucket_embed) {
#if IM_WITH_CUDA
  if (centers.device().is_cuda())
    return concept_buckets_cuda(centers, bucket_embed).to_vector<int64_t>();
#endif
  const Tensor c = centers.detach().contiguous().to(DType::Float64);
  const Tensor phi = bucket_embed.detach().contiguous().to(DType::Float64);
  const int64_t K = c.size(0), H = phi.size(0), dc = c.size(1);
  const double* pc = c.data<double>();
  const double* pp = phi.data<double>();
  std::vector<int64_t> out(K);
  for (int64_t k = 0; k < K; ++k) {
    double best = -INFINITY;
    for (int64_t h = 0; h < H; ++h) {
      double dot = 0;
      for (int64_t j = 0; j < dc; ++j) dot += pc[k * dc + j] * pp[h * dc + j];
      if (dot > best) {
        best = dot;
        out[k] = h;
      }
    }
  }
  return out;
}

Tensor bucket_mask(const Tensor& hash_probs, const Tensor& buckets, int64_t top_r) {
#if IM_WITH_CUDA
  if (hash_probs.device().is_cuda()) return bucket_mask_cuda(hash_probs, buckets, top_r);
#endif
  return bucket_mask(hash_probs, buckets.to(Device::cpu()).to_vector<int64_t>(), top_r);
}

Tensor bucket_mask(const Tensor& hash_probs, const std::vector<int64_t>& buckets, int64_t top_r) {
#if IM_WITH_CUDA
  if (hash_probs.device().is_cuda()) {
    const int64_t H = hash_probs.size(2);
    for (size_t k = 0; k < buckets.size(); ++k)
      IM_CHECK(buckets[k] >= 0 && buckets[k] < H, "bucket_mask: bucket ", buckets[k],
               " of concept ", k, " is out of range for ", H, " buckets");
    const Tensor b = Tensor::from_vector<int64_t>(buckets, {static_cast<int64_t>(buckets.size())})
                         .to(hash_probs.device());
    return bucket_mask_cuda(hash_probs, b, top_r);
  }
#endif
  const Tensor p = hash_probs.detach().contiguous().to(DType::Float64);
  const int64_t B = p.size(0), L = p.size(1), H = p.size(2);
  const int64_t K = static_cast<int64_t>(buckets.size());
  const int64_t r = std::min(top_r, H);
  Tensor mask = Tensor::empty({B, L, K}, DType::UInt8);
  const double* pp = p.data<double>();
  uint8_t* pm = mask.data<uint8_t>();
  std::vector<int64_t> order(H);
  std::vector<uint8_t> kept(H);
  for (int64_t row = 0; row < B * L; ++row) {
    const double* probs = pp + row * H;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + r, order.end(), [&](int64_t a, int64_t b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    std::fill(kept.begin(), kept.end(), 0);
    for (int64_t i = 0; i < r; ++i) kept[order[i]] = 1;
    uint8_t* m = pm + row * K;
    int64_t candidates = 0;
    for (int64_t k = 0; k < K; ++k) {
      m[k] = kept[buckets[k]] ? 0 : 1;
      candidates += 1 - m[k];
    }
    if (candidates == 0) std::fill(m, m + K, 0);  // empty set: fall back to all concepts
  }
  return mask;
}

Tensor budget_mask(const Tensor& masked_logits, int64_t k_min, int64_t k_max) {
#if IM_WITH_CUDA
  if (masked_logits.device().is_cuda()) return budget_mask_cuda(masked_logits, k_min, k_max);
#endif
  const Tensor s = masked_logits.detach().contiguous().to(DType::Float64);
  const int64_t rows = s.numel() / s.size(-1), K = s.size(-1);
  Tensor mask = Tensor::empty(s.shape(), DType::UInt8);
  const double* ps = s.data<double>();
  uint8_t* pm = mask.data<uint8_t>();
  std::vector<int64_t> order(K);
  const double log_k = K > 1 ? std::log(static_cast<double>(K)) : 1.0;
  for (int64_t row = 0; row < rows; ++row) {
    const double* z = ps + row * K;
    double zmax = -INFINITY;
    for (int64_t k = 0; k < K; ++k) zmax = std::max(zmax, z[k]);
    double denom = 0;
    for (int64_t k = 0; k < K; ++k) denom += std::isinf(z[k]) ? 0.0 : std::exp(z[k] - zmax);
    double entropy = 0;
    int64_t candidates = 0;
    for (int64_t k = 0; k < K; ++k) {
      if (std::isinf(z[k])) continue;
      ++candidates;
      const double pk = std::exp(z[k] - zmax) / denom;
      if (pk > 0) entropy -= pk * std::log(pk);
    }
    const double u = K > 1 ? entropy / log_k : 0.0;
    int64_t budget = static_cast<int64_t>(std::ceil(k_min + (k_max - k_min) * u - 1e-12));
    budget = std::clamp<int64_t>(budget, 1, K);
    budget = std::min(budget, candidates);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + budget, order.end(),
                      [&](int64_t a, int64_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    uint8_t* m = pm + row * K;
    std::fill(m, m + K, 1);
    for (int64_t i = 0; i < budget; ++i) m[order[i]] = 0;
  }
  return mask;
}

}  // namespace im::layers
