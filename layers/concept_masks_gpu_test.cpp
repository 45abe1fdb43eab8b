// The concept filter's discrete selections on a GPU against the CPU code: concept
// buckets, bucket masks and budget masks must be exactly equal, ties, -inf entries,
// all-masked rows and rows whose bucket set is empty included, for float32 and float64
// inputs. Skipped without a GPU (ctest label gpu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "core/ops.h"
#include "core/rng.h"
#include "layers/concept_masks.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using namespace im::layers;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

Tensor gpu(const Tensor& t) {
  return t.to(Device::cuda());
}

std::vector<uint8_t> host_bytes(const Tensor& mask) {
  return mask.to(Device::cpu()).to_vector<uint8_t>();
}

// Kept entries (mask 0) per row of a [rows, K] mask.
std::vector<int64_t> kept_per_row(const std::vector<uint8_t>& m, int64_t K) {
  std::vector<int64_t> kept(m.size() / K, 0);
  for (size_t i = 0; i < m.size(); ++i) kept[i / K] += m[i] == 0 ? 1 : 0;
  return kept;
}

}  // namespace

TEST(ConceptMasksGpu, ConceptBucketsMatchCpuIncludingTies) {
  REQUIRE_GPU();
  im::Generator gen(301);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t K : {1, 7, 64}) {
      for (int64_t H : {1, 5, 24, 70}) {
        const int64_t dc = 13;
        std::vector<double> c = im::randn({K, dc}, gen, DType::Float64).to_vector<double>();
        std::vector<double> phi = im::randn({H, dc}, gen, DType::Float64).to_vector<double>();
        // Ties: a repeated bucket embedding (equal dots: the lower bucket wins) and a zero
        // centre (every dot 0: bucket 0).
        if (H >= 5)
          for (int64_t j = 0; j < dc; ++j) phi[4 * dc + j] = phi[2 * dc + j];
        for (int64_t j = 0; j < dc; ++j) c[j] = 0;
        const Tensor ct = Tensor::from_vector<double>(c, {K, dc}).to(dt);
        const Tensor pt = Tensor::from_vector<double>(phi, {H, dc}).to(dt);
        const std::vector<int64_t> cpu = concept_buckets(ct, pt);
        EXPECT_EQ(concept_buckets(gpu(ct), gpu(pt)), cpu) << "K " << K << " H " << H;
        const Tensor ids = concept_bucket_ids(gpu(ct), gpu(pt));  // stays on the GPU
        EXPECT_TRUE(ids.device().is_cuda());
        EXPECT_EQ(ids.to(Device::cpu()).to_vector<int64_t>(), cpu);
        EXPECT_EQ(concept_bucket_ids(ct, pt).to_vector<int64_t>(), cpu);
        EXPECT_EQ(cpu[0], 0);
      }
    }
  }
  // Buckets e_0 .. e_5 with bucket 4 = bucket 2 = e_2; centres near e_2, e_5 and e_0
  // (negative dots everywhere else): the first gets 2, not 4.
  std::vector<double> p(6 * 8, 0.0);
  for (int64_t h = 0; h < 6; ++h) p[h * 8 + (h == 4 ? 2 : h)] = 1.0;
  const Tensor pt = Tensor::from_vector<double>(p, {6, 8});
  std::vector<double> c(3 * 8, -0.1);
  c[0 * 8 + 2] = 0.9;
  c[1 * 8 + 5] = 0.7;
  c[2 * 8 + 0] = 0.3;
  const Tensor ct = Tensor::from_vector<double>(c, {3, 8});
  EXPECT_EQ(concept_buckets(ct, pt), (std::vector<int64_t>{2, 5, 0}));
  EXPECT_EQ(concept_buckets(gpu(ct), gpu(pt)), (std::vector<int64_t>{2, 5, 0}));
}

TEST(ConceptMasksGpu, BucketMaskMatchesCpuWithTiesAndEmptyBucketSets) {
  REQUIRE_GPU();
  im::Generator gen(302);
  std::mt19937_64 rng(302);
  const int64_t B = 3, L = 17, H = 24, K = 37;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t top_r : {1, 2, 5, 24, 30}) {
      // Probabilities on a coarse grid (many ties); buckets drawn from 0..5 only.
      std::vector<double> probs =
          im::rand_uniform({B, L, H}, gen, 0, 1, DType::Float64).to_vector<double>();
      for (auto& v : probs) v = std::floor(v * 4) / 4;
      std::uniform_int_distribution<int64_t> pick(0, 5);
      std::vector<int64_t> buckets(K);
      for (auto& b : buckets) b = pick(rng);
      buckets[0] = 0;  // buckets 0 and 5 are used
      buckets[1] = 5;
      // Row 0: buckets 0..5 have the lowest probability: an empty set unless top_r > 18.
      for (int64_t h = 0; h < H; ++h) probs[h] = h < 6 ? 0.0 : 0.5;
      // Row 1: all equal: the top r are buckets 0..r-1 (ties by index).
      for (int64_t h = 0; h < H; ++h) probs[H + h] = 0.25;
      const Tensor p = Tensor::from_vector<double>(probs, {B, L, H}).to(dt);
      const Tensor mc = bucket_mask(p, buckets, top_r);
      const Tensor mg = bucket_mask(gpu(p), buckets, top_r);
      EXPECT_EQ(mg.device(), Device::cuda());
      EXPECT_EQ(mg.shape(), (Shape{B, L, K}));
      const std::vector<uint8_t> cpu = host_bytes(mc);
      EXPECT_EQ(host_bytes(mg), cpu) << im::dtype_name(dt) << " top_r " << top_r;
      // The buckets as a device tensor (what a GPU step passes): the same mask.
      const Tensor ids = Tensor::from_vector<int64_t>(buckets, {K});
      EXPECT_EQ(host_bytes(bucket_mask(gpu(p), gpu(ids), top_r)), cpu) << top_r;
      EXPECT_EQ(host_bytes(bucket_mask(p, ids, top_r)), cpu) << top_r;
      // The cases are real: row 0 fell back to all concepts; row 1 masks bucket 5's
      // concepts unless top_r reaches it; some row masks something when r < H.
      EXPECT_TRUE(std::all_of(cpu.begin(), cpu.begin() + K, [](uint8_t m) { return m == 0; }));
      if (top_r < 6) {
        bool masked_somewhere = false;
        for (uint8_t m : cpu) masked_somewhere |= m != 0;
        EXPECT_TRUE(masked_somewhere) << top_r;
      }
    }
  }
}

TEST(ConceptMasksGpu, BudgetMaskMatchesCpuWithTiesAndMaskedEntries) {
  REQUIRE_GPU();
  im::Generator gen(303);
  std::mt19937_64 rng(303);
  for (DType dt : {DType::Float32, DType::Float64}) {
    // 1000 and 1536 (the kernel's limit) need more than the default 48 KiB of shared memory.
    for (int64_t K : {1, 2, 7, 37, 64, 1000, 1536}) {
      for (auto [k_min, k_max] : {std::pair<int64_t, int64_t>{2, 8}, {1, 1}, {3, 100}}) {
        const int64_t B = 4, L = 19;
        std::vector<double> z = im::randn({B, L, K}, gen, DType::Float64).to_vector<double>();
        std::bernoulli_distribution masked(0.3);
        for (auto& v : z)
          if (masked(rng)) v = -kInf;
        // Row 0: every entry masked. Row 1: all equal (uniform: the largest budget,
        // picked by index). Row 2: one finite entry. Row 3: ties in pairs. Row 4: a
        // peaked row (small budget).
        for (int64_t k = 0; k < K; ++k) {
          z[k] = -kInf;
          z[K + k] = 0.75;
          z[2 * K + k] = k == K / 2 ? 1.0 : -kInf;
          z[3 * K + k] = static_cast<double>(k / 2);
          z[4 * K + k] = k == 1 ? 30.0 : 0.0;
        }
        const Tensor s = Tensor::from_vector<double>(z, {B, L, K}).to(dt);
        const Tensor mc = budget_mask(s, k_min, k_max);
        const Tensor mg = budget_mask(gpu(s), k_min, k_max);
        EXPECT_EQ(mg.device(), Device::cuda());
        const std::vector<uint8_t> cpu = host_bytes(mc);
        EXPECT_EQ(host_bytes(mg), cpu)
            << im::dtype_name(dt) << " K " << K << " k_min " << k_min << " k_max " << k_max;
        const std::vector<int64_t> kept = kept_per_row(cpu, K);
        EXPECT_EQ(kept[0], 0);  // nothing finite: everything masked
        EXPECT_EQ(kept[2], 1);
        if (K >= 8 && k_max == 8) {
          // The budget follows the entropy: several different budgets across the rows.
          EXPECT_GT(std::set<int64_t>(kept.begin(), kept.end()).size(), 2u) << K;
          EXPECT_EQ(kept[1], 8);  // uniform row: u = 1, budget k_max
        }
      }
    }
  }
  // A non-contiguous input: the transposed view of a [K, rows] buffer.
  const Tensor t = im::randn({37, 29}, gen, DType::Float32);
  EXPECT_EQ(host_bytes(budget_mask(gpu(t).transpose(0, 1), 2, 8)),
            host_bytes(budget_mask(t.transpose(0, 1), 2, 8)));
}
