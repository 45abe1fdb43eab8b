// Philox generator: reproducible, restorable, and matching published test vectors.
#include "core/rng.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kernels/philox.h"

using im::Generator;
using im::Tensor;

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors):
  // counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
  const auto zero = im::philox::generate(0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
}

TEST(Generator, SameSeedSameNumbers) {
  Generator a(7), b(7), c(8);
  const auto va = im::rand_uniform({100}, a).to_vector<float>();
  const auto vb = im::rand_uniform({100}, b).to_vector<float>();
  const auto vc = im::rand_uniform({100}, c).to_vector<float>();
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  for (float v : va) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
  }
}

TEST(Generator, StateSaveAndRestoreReproducesLaterDraws) {
  Generator g(123);
  im::rand_uniform({5}, g);
  const im::GeneratorState saved = g.state();
  EXPECT_EQ(saved.seed, 123u);
  EXPECT_EQ(saved.offset, 2u);  // 5 words = 2 Philox blocks
  const auto first = im::randn({33}, g).to_vector<double>();
  Generator restored(999);
  restored.set_state(saved);
  EXPECT_EQ(im::randn({33}, restored).to_vector<double>(), first);
  EXPECT_EQ(restored.state(), g.state());
}

TEST(Generator, ConsecutiveDrawsDiffer) {
  Generator g(1);
  EXPECT_NE(im::rand_uniform({8}, g).to_vector<float>(),
            im::rand_uniform({8}, g).to_vector<float>());
}

TEST(Generator, DistributionsHaveTheRightMoments) {
  Generator g(2024);
  const auto n = im::randn({20000}, g, im::DType::Float64).to_vector<double>();
  double mean = 0, sq = 0;
  for (double v : n) mean += v;
  mean /= n.size();
  for (double v : n) sq += (v - mean) * (v - mean);
  EXPECT_NEAR(mean, 0.0, 0.03);
  EXPECT_NEAR(std::sqrt(sq / n.size()), 1.0, 0.03);
  const auto u = im::rand_uniform({20000}, g, -2.0, 4.0, im::DType::Float64).to_vector<double>();
  double um = 0;
  for (double v : u) um += v;
  EXPECT_NEAR(um / u.size(), 1.0, 0.05);
  const auto m = im::bernoulli_mask({20000}, 0.3, g).to_vector<uint8_t>();
  double kept = 0;
  for (uint8_t v : m) kept += v;
  EXPECT_NEAR(kept / m.size(), 0.3, 0.015);
}
