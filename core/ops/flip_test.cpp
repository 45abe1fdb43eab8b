#include <gtest/gtest.h>

#include "core/ops.h"

using im::Tensor;

TEST(Flip, ReversesAlongTheGivenDim) {
  Tensor x = Tensor::arange(6, im::DType::Float32).reshape({2, 3});
  EXPECT_EQ(im::flip(x, 1).to_vector<float>(), (std::vector<float>{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(im::flip(x, 0).to_vector<float>(), (std::vector<float>{3, 4, 5, 0, 1, 2}));
  EXPECT_EQ(im::flip(x.transpose(0, 1), 0).to_vector<float>(),
            (std::vector<float>{2, 5, 1, 4, 0, 3}));
  EXPECT_TRUE(im::flip(x, 1).is_contiguous());
  EXPECT_EQ(im::flip(im::flip(x, 1), 1).to_vector<float>(), x.to_vector<float>());
}
