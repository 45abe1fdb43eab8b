// Concept filter selections on the GPU: one warp per row (a concept or a token). The
// CPU code (layers/concept_masks.cpp) sorts; here each lane ranks its entries against
// the row under the same strict total order (value descending, then index ascending),
// which selects exactly the same set. Arithmetic is in double with explicitly rounded
// operations (__dadd_rn, __dmul_rn, ...), which nvcc never fuses into an FMA, so sums and
// products round as the host's do. Inputs may be float32, float64 or bfloat16: each
// widens to double exactly, as the CPU code's conversion does.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels/bfloat16.h"
#include "kernels/cuda/concept_masks.h"
#include "kernels/cuda/launch.cuh"

namespace im::kernels::cuda {

namespace {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks for `rows` rows at `warps` rows per block (grid-stride beyond the cap).
unsigned warp_row_blocks(int64_t rows, int warps) {
  const int64_t b = (rows + warps - 1) / warps;
  return static_cast<unsigned>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

__device__ __forceinline__ int64_t warp_sum(int64_t v) {
  for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(kFullMask, v, off);
  return v;
}

// ---- concept_buckets ----------------------------------------------------------------------

constexpr int kBucketWarps = 4;

// Warp per concept k; lane l takes buckets h = l, l+32, ... in ascending order and keeps
// the first strict maximum (the CPU's `dot > best` from -inf); lanes then combine, larger
// dot first and lower h on equal dots. No candidate (every dot NaN or -inf) gives 0.
template <typename T>
__global__ void concept_buckets_kernel(const T* centers, const T* phi, int64_t* buckets, int64_t K,
                                       int64_t H, int64_t dc) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t k = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; k < K;
       k += warps) {
    const T* c = centers + k * dc;
    double best = -INFINITY;
    int64_t arg = -1;
    for (int64_t h = lane; h < H; h += kWarp) {
      const T* p = phi + h * dc;
      double dot = 0;
      for (int64_t j = 0; j < dc; ++j)
        dot = __dadd_rn(dot, __dmul_rn(convert<double>(c[j]), convert<double>(p[j])));
      if (dot > best) {
        best = dot;
        arg = h;
      }
    }
    for (int off = kWarp / 2; off > 0; off /= 2) {
      const double ob = __shfl_xor_sync(kFullMask, best, off);
      const int64_t oa = __shfl_xor_sync(kFullMask, arg, off);
      const bool take = oa >= 0 && (arg < 0 || ob > best || (ob == best && oa < arg));
      if (take) {
        best = ob;
        arg = oa;
      }
    }
    if (lane == 0) buckets[k] = arg < 0 ? 0 : arg;
  }
}

// ---- bucket_mask --------------------------------------------------------------------------

constexpr int kMaskWarps = 8;

// Bucket h is among a row's top r iff fewer than r buckets rank before it.
template <typename T>
__device__ __forceinline__ bool in_top(const T* p, int64_t H, int64_t h, int64_t r) {
  const double ph = convert<double>(p[h]);
  int64_t rank = 0;
  for (int64_t j = 0; j < H && rank < r; ++j) {
    const double pj = convert<double>(p[j]);
    if (pj > ph || (pj == ph && j < h)) ++rank;
  }
  return rank < r;
}

template <typename T>
__global__ void bucket_mask_kernel(const T* probs, const int64_t* buckets, uint8_t* mask,
                                   int64_t rows, int64_t H, int64_t K, int64_t r) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x / kWarp) + threadIdx.x / kWarp; row < rows;
       row += warps) {
    const T* p = probs + row * H;
    uint8_t* m = mask + row * K;
    int64_t kept = 0;
    for (int64_t k = lane; k < K; k += kWarp) {
      const bool keep = in_top(p, H, buckets[k], r);
      m[k] = keep ? 0 : 1;
      kept += keep ? 1 : 0;
    }
    kept = warp_sum(kept);
    if (kept == 0)  // empty candidate set: fall back to all concepts
      for (int64_t k = lane; k < K; k += kWarp) m[k] = 0;
  }
}

// ---- budget_mask --------------------------------------------------------------------------

constexpr int kBudgetWarps = 4;
constexpr int64_t kBudgetMaxK = 1536;

// The row's logits are ranked in this type: bfloat16 and float32 values are exactly
// float32 (comparisons in float give double's answers at a fraction of the cost of the
// widening conversions and double compares, which bound the kernel when done K^2 times).
template <typename T>
using rank_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
constexpr size_t budget_smem_bytes(int64_t K) {
  return static_cast<size_t>(kBudgetWarps * K) * (sizeof(double) + sizeof(rank_t<T>));
}

template <typename T>
__global__ void budget_mask_kernel(const T* logits, uint8_t* mask, int64_t rows, int64_t K,
                                   int64_t k_min, int64_t k_max, double log_k) {
  using R = rank_t<T>;
  // Per warp: K doubles of scratch (e), then (after every warp's e) K logits of its row.
  extern __shared__ double scratch[];
  const int lane = threadIdx.x % kWarp;
  const int warp = threadIdx.x / kWarp;
  const int k_count = static_cast<int>(K);
  double* e = scratch + warp * K;
  R* zs = reinterpret_cast<R*>(scratch + kBudgetWarps * K) + warp * K;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = blockIdx.x * int64_t(blockDim.x / kWarp) + warp; row < rows; row += warps) {
    const T* z = logits + row * K;
    // zmax as std::max folds it: (m < v) ? v : m, from -inf (NaN never enters).
    double zmax = -INFINITY;
    int candidates = 0;
    for (int k = lane; k < k_count; k += kWarp) {
      const double v = convert<double>(z[k]);
      zs[k] = static_cast<R>(v);  // exact: v came from R's values
      zmax = zmax < v ? v : zmax;
      candidates += isinf(v) ? 0 : 1;
    }
    for (int off = kWarp / 2; off > 0; off /= 2) {
      const double o = __shfl_xor_sync(kFullMask, zmax, off);
      zmax = zmax < o ? o : zmax;
    }
    for (int off = kWarp / 2; off > 0; off /= 2)
      candidates += __shfl_xor_sync(kFullMask, candidates, off);
    // denom = sum over k in order of exp(z - zmax) (0 for infinite entries).
    for (int k = lane; k < k_count; k += kWarp) {
      const double v = static_cast<double>(zs[k]);
      e[k] = isinf(v) ? 0.0 : exp(__dsub_rn(v, zmax));
    }
    __syncwarp();
    double denom = 0;
    if (lane == 0)
      for (int k = 0; k < k_count; ++k) denom = __dadd_rn(denom, e[k]);
    denom = __shfl_sync(kFullMask, denom, 0);
    __syncwarp();  // lane 0 has read every e[k] before they are overwritten
    // entropy = -sum over k in order of p log p, over finite entries with p > 0.
    for (int k = lane; k < k_count; k += kWarp) {
      const double v = static_cast<double>(zs[k]);
      double term = 0.0;
      if (!isinf(v)) {
        const double pk = __ddiv_rn(e[k], denom);
        if (pk > 0) term = __dmul_rn(pk, log(pk));
      }
      e[k] = term;
    }
    __syncwarp();
    int budget = 0;
    if (lane == 0) {
      double entropy = 0;
      for (int k = 0; k < k_count; ++k)
        if (e[k] != 0.0) entropy = __dsub_rn(entropy, e[k]);
      const double u = K > 1 ? __ddiv_rn(entropy, log_k) : 0.0;
      const double level = __dsub_rn(
          __dadd_rn(static_cast<double>(k_min), __dmul_rn(static_cast<double>(k_max - k_min), u)),
          1e-12);
      int64_t b = static_cast<int64_t>(ceil(level));
      b = b < 1 ? 1 : (b > K ? K : b);
      budget = static_cast<int>(b < candidates ? b : candidates);
    }
    budget = __shfl_sync(kFullMask, budget, 0);
    uint8_t* m = mask + row * K;
    for (int k = lane; k < k_count; k += kWarp) {
      const R zk = zs[k];
      int rank = 0;
      for (int j = 0; j < k_count && rank < budget; ++j) {
        const R zj = zs[j];
        rank += (zj > zk || (zj == zk && j < k)) ? 1 : 0;
      }
      m[k] = rank < budget ? 0 : 1;
    }
    __syncwarp();  // e and zs are rewritten by the next row
  }
}

}  // namespace

template <typename T>
void concept_buckets(const T* centers, const T* phi, int64_t* buckets, int64_t K, int64_t H,
                     int64_t dc) {
  if (K == 0) return;
  concept_buckets_kernel<T>
      <<<warp_row_blocks(K, kBucketWarps), kBucketWarps * kWarp, 0, stream()>>>(centers, phi,
                                                                                buckets, K, H, dc);
  check_last_launch("concept_buckets kernel");
}

template <typename T>
void bucket_mask(const T* probs, const int64_t* buckets, uint8_t* mask, int64_t rows, int64_t H,
                 int64_t K, int64_t top_r) {
  if (rows == 0 || K == 0) return;
  const int64_t r = top_r < H ? top_r : H;
  bucket_mask_kernel<T><<<warp_row_blocks(rows, kMaskWarps), kMaskWarps * kWarp, 0, stream()>>>(
      probs, buckets, mask, rows, H, K, r);
  check_last_launch("bucket_mask kernel");
}

template <typename T>
void budget_mask(const T* logits, uint8_t* mask, int64_t rows, int64_t K, int64_t k_min,
                 int64_t k_max, double log_k) {
  if (rows == 0 || K == 0) return;
  if (K > kBudgetMaxK)
    throw std::runtime_error("budget_mask: " + std::to_string(K) +
                             " concepts per token, the CUDA kernel takes at most " +
                             std::to_string(kBudgetMaxK));
  const size_t smem = budget_smem_bytes<T>(K);
  if (smem > 48 * 1024)  // above the default: opt in (once per dtype; cheap to repeat)
    check_cuda(
        cudaFuncSetAttribute(budget_mask_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)),
        "budget_mask shared memory attribute");
  budget_mask_kernel<T>
      <<<warp_row_blocks(rows, kBudgetWarps), kBudgetWarps * kWarp, smem, stream()>>>(
          logits, mask, rows, K, k_min, k_max, log_k);
  check_last_launch("budget_mask kernel");
}

#define IM_CUDA_INSTANTIATE_CONCEPT_MASKS(T)                                                  \
  template void concept_buckets<T>(const T*, const T*, int64_t*, int64_t, int64_t, int64_t);  \
  template void bucket_mask<T>(const T*, const int64_t*, uint8_t*, int64_t, int64_t, int64_t, \
                               int64_t);                                                      \
  template void budget_mask<T>(const T*, uint8_t*, int64_t, int64_t, int64_t, int64_t, double);

IM_CUDA_INSTANTIATE_CONCEPT_MASKS(float)
IM_CUDA_INSTANTIATE_CONCEPT_MASKS(double)
IM_CUDA_INSTANTIATE_CONCEPT_MASKS(bfloat16)
#undef IM_CUDA_INSTANTIATE_CONCEPT_MASKS

}  // namespace im::kernels::cuda
