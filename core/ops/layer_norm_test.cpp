// layer_norm forward values: normalised statistics, affine part, hand-computed rows.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/expect_error.h"

using im::DType;
using im::Tensor;
using im::testing::throws_error_mentioning;

TEST(LayerNorm, OutputHasMeanZeroVarianceOne) {
  im::Generator gen(5);
  const Tensor x = im::rand_uniform({5, 33}, gen, -4, 9, DType::Float64);
  const Tensor y = im::layer_norm(x, Tensor(), Tensor());
  EXPECT_EQ(y.shape(), x.shape());
  for (double m : im::mean(y, {1}).to_vector<double>()) EXPECT_NEAR(m, 0.0, 1e-12);
  // Biased variance; eps shrinks it by var / (var + eps), under 1e-5 here.
  for (double v : im::var(y, {1}, 0).to_vector<double>()) EXPECT_NEAR(v, 1.0, 1e-5);
}

TEST(LayerNorm, KnownValues) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 10, 10, 10, 10}, {2, 4});
  const std::vector<double> y = im::layer_norm(x, Tensor(), Tensor(), 1e-5).to_vector<double>();
  const double rstd = 1 / std::sqrt(1.25 + 1e-5);  // mean 2.5, biased variance 1.25
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (i + 1 - 2.5) * rstd, 1e-14);
  for (int i = 4; i < 8; ++i) EXPECT_EQ(y[i], 0.0) << "a constant row normalises to 0";
}

TEST(LayerNorm, AffineIsAppliedPerFeature) {
  im::Generator gen(6);
  const Tensor x = im::rand_uniform({2, 3, 5}, gen, -1, 1, DType::Float64);
  const Tensor w = Tensor::from_vector<double>({1, 2, -1, 0.5, 0}, {5});
  const Tensor b = Tensor::from_vector<double>({0, 1, 2, 3, 4}, {5});
  const std::vector<double> plain = im::layer_norm(x, Tensor(), Tensor()).to_vector<double>();
  const std::vector<double> wv = w.to_vector<double>(), bv = b.to_vector<double>();
  const std::vector<double> both = im::layer_norm(x, w, b).to_vector<double>();
  const std::vector<double> w_only = im::layer_norm(x, w, Tensor()).to_vector<double>();
  const std::vector<double> b_only = im::layer_norm(x, Tensor(), b).to_vector<double>();
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(both[i], plain[i] * wv[i % 5] + bv[i % 5], 1e-14);
    EXPECT_NEAR(w_only[i], plain[i] * wv[i % 5], 1e-14);
    EXPECT_NEAR(b_only[i], plain[i] + bv[i % 5], 1e-14);
  }
}

TEST(LayerNorm, Float32MatchesFloat64) {
  im::Generator gen(7);
  const Tensor x = im::rand_uniform({4, 64}, gen, -3, 3, DType::Float64);
  const std::vector<double> y64 = im::layer_norm(x, Tensor(), Tensor()).to_vector<double>();
  const std::vector<float> y32 =
      im::layer_norm(x.to(DType::Float32), Tensor(), Tensor()).to_vector<float>();
  for (size_t i = 0; i < y64.size(); ++i) EXPECT_NEAR(y32[i], y64[i], 1e-5);
}

TEST(LayerNorm, NonContiguousInput) {
  im::Generator gen(8);
  const Tensor x = im::rand_uniform({5, 3}, gen, -1, 1, DType::Float64);
  EXPECT_EQ(im::layer_norm(x.transpose(0, 1), Tensor(), Tensor()).to_vector<double>(),
            im::layer_norm(x.transpose(0, 1).contiguous(), Tensor(), Tensor()).to_vector<double>());
}

TEST(LayerNorm, Errors) {
  const Tensor x = Tensor::zeros({2, 4});
  EXPECT_THROW(im::layer_norm(x, Tensor::ones({5}), Tensor()), im::Error);
  EXPECT_TRUE(throws_error_mentioning([&] { im::layer_norm(x, Tensor(), Tensor::ones({3})); },
                                      {"layer_norm", "bias", "[4]"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::layer_norm(x, Tensor::ones({4}, DType::Float64), Tensor()); },
      {"layer_norm", "dtype"}));
  EXPECT_TRUE(
      throws_error_mentioning([&] { im::layer_norm(x, Tensor(), Tensor(), -1.0); }, {"eps", "-1"}));
  EXPECT_THROW(im::layer_norm(Tensor::scalar(1.0), Tensor(), Tensor()), im::Error);
}
