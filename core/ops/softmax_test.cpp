// softmax / log_softmax forward values: normalisation, stability, masking and dims.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

using im::DType;
using im::Tensor;

namespace {

Tensor random(const im::Shape& shape, uint64_t seed, DType dtype, double lo = -3, double hi = 3) {
  im::Generator gen(seed);
  return im::rand_uniform(shape, gen, lo, hi, dtype);
}

}  // namespace

TEST(Softmax, KnownValues) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3}, {3});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const std::vector<double> y = im::softmax(x, 0).to_vector<double>();
  ASSERT_EQ(y.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(y[i], std::exp(i + 1.0) / z, 1e-15);
  const std::vector<double> ly = im::log_softmax(x, -1).to_vector<double>();
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(ly[i], (i + 1.0) - std::log(z), 1e-14);
}

TEST(Softmax, RowsSumToOneAlongEveryDim) {
  const Tensor x = random({4, 17, 3}, 1, DType::Float32);
  for (int64_t dim : {0, 1, 2, -1}) {
    const Tensor y = im::softmax(x, dim);
    EXPECT_EQ(y.shape(), x.shape());
    EXPECT_EQ(y.dtype(), DType::Float32);
    EXPECT_TRUE(y.is_contiguous());
    for (float v : y.to_vector<float>()) EXPECT_GT(v, 0.0f);
    for (float s : im::sum(y, {dim}).to_vector<float>()) EXPECT_NEAR(s, 1.0f, 1e-5f) << dim;
  }
}

TEST(Softmax, StableForLargeLogits) {
  const Tensor x = Tensor::from_vector<float>({1000, 1001, 1002, -1000, 0, 1000}, {2, 3});
  const std::vector<float> y = im::softmax(x, 1).to_vector<float>();
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  EXPECT_NEAR(y[0], 1 / z, 1e-6);
  EXPECT_NEAR(y[1], std::exp(1.0) / z, 1e-6);
  EXPECT_NEAR(y[2], std::exp(2.0) / z, 1e-6);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[5], 1.0f);
  const std::vector<float> ly = im::log_softmax(x, 1).to_vector<float>();
  for (float v : ly) EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(ly[3], -2000.0f, 1e-3f);
  EXPECT_NEAR(ly[4], -1000.0f, 1e-3f);
  EXPECT_NEAR(ly[5], 0.0f, 1e-6f);
}

TEST(Softmax, LogSoftmaxEqualsLogOfSoftmax) {
  const Tensor x = random({3, 5, 7}, 2, DType::Float64);
  for (int64_t dim : {0, 1, 2}) {
    const std::vector<double> a = im::log_softmax(x, dim).to_vector<double>();
    const std::vector<double> b = im::log(im::softmax(x, dim)).to_vector<double>();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12) << dim;
  }
}

TEST(Softmax, MaskedEntriesGetZeroProbability) {
  const double ninf = -std::numeric_limits<double>::infinity();
  const Tensor x = Tensor::from_vector<double>({0, ninf, 0, ninf}, {4});
  EXPECT_EQ(im::softmax(x, 0).to_vector<double>(), (std::vector<double>{0.5, 0, 0.5, 0}));
  const std::vector<double> ly = im::log_softmax(x, 0).to_vector<double>();
  EXPECT_NEAR(ly[0], std::log(0.5), 1e-15);
  EXPECT_EQ(ly[1], ninf);
}

TEST(Softmax, NonLastDimMatchesTransposedLastDim) {
  const Tensor x = random({5, 3}, 3, DType::Float64);
  const Tensor a = im::softmax(x, 0);
  const Tensor b = im::softmax(x.transpose(0, 1), 1).transpose(0, 1);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  // A non-contiguous input along its last dim.
  const Tensor c = im::softmax(x.transpose(0, 1), -1);
  EXPECT_EQ(c.to_vector<double>(),
            im::softmax(x.transpose(0, 1).contiguous(), -1).to_vector<double>());
}

TEST(Softmax, BackwardOfSumIsZero) {
  // Rows sum to one, so the gradient of their total is exactly zero.
  Tensor x = random({2, 9}, 4, DType::Float64);
  x.set_requires_grad(true);
  im::sum(im::softmax(x, 1)).backward();
  for (double g : x.grad().to_vector<double>()) EXPECT_NEAR(g, 0.0, 1e-15);
}

TEST(Softmax, Errors) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_THROW(im::softmax(x, 2), im::Error);
  EXPECT_THROW(im::log_softmax(x, -3), im::Error);
  EXPECT_THROW(im::softmax(Tensor::zeros({3}, DType::Int64), 0), im::Error);
}
