// cumsum forward values along each dim, and its reverse-cumsum gradient.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/ops.h"

using im::DType;
using im::Tensor;

TEST(Cumsum, KnownValues) {
  const Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(im::cumsum(x, 1).to_vector<float>(), (std::vector<float>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(im::cumsum(x, 0).to_vector<float>(), (std::vector<float>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(im::cumsum(x, -1).to_vector<float>(), im::cumsum(x, 1).to_vector<float>());
  EXPECT_EQ(im::cumsum(x.transpose(0, 1), 1).to_vector<float>(),
            (std::vector<float>{1, 5, 2, 7, 3, 9}));
}

TEST(Cumsum, MiddleDimOf3d) {
  const Tensor x = Tensor::arange(12, DType::Float64).reshape({2, 3, 2});
  EXPECT_EQ(im::cumsum(x, 1).to_vector<double>(),
            (std::vector<double>{0, 1, 2, 4, 6, 9, 6, 7, 14, 16, 24, 27}));
}

TEST(Cumsum, GradientIsReverseCumsum) {
  Tensor x = Tensor::from_vector<double>({0.5, -1, 2, 3}, {4});
  x.set_requires_grad(true);
  const Tensor w = Tensor::from_vector<double>({1, 10, 100, 1000}, {4});
  im::sum(im::mul(im::cumsum(x, 0), w)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1111, 1110, 1100, 1000}));
}

TEST(Cumsum, LongFloat32SumsStayAccurate) {
  // Running sums are kept in double; a float running sum of 0.1f drifts to ~9998.6.
  const Tensor tenths = Tensor::full({100000}, 0.1);
  EXPECT_NEAR(im::cumsum(tenths, 0).to_vector<float>().back(), 10000.0f, 1e-2f);
}

TEST(Cumsum, Errors) {
  EXPECT_THROW(im::cumsum(Tensor::zeros({2, 3}), 2), im::Error);
  EXPECT_THROW(im::cumsum(Tensor::zeros({3}, DType::Int32), 0), im::Error);
}
