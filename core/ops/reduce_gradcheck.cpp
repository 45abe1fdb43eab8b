// Gradient checks of sum/mean/max/var over single and multiple dims, with keepdim.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {
const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {-1}, {1}, {0, 2}, {2, 0, 1}};
}

GRADCHECK_CASE(sum, "sum") {
  Tensor x = random_input({3, 5, 7}, 1);
  for (const auto& dims : kDimSets)
    for (bool keep : {false, true})
      EXPECT_TRUE(gradcheck([&](const auto& in) { return im::sum(in[0], dims, keep); }, {x}));
  Tensor one = random_input({1}, 2);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::sum(in[0]); }, {one}));
}

GRADCHECK_CASE(mean, "mean") {
  Tensor x = random_input({3, 5, 7}, 3);
  for (const auto& dims : kDimSets)
    for (bool keep : {false, true})
      EXPECT_TRUE(gradcheck([&](const auto& in) { return im::mean(in[0], dims, keep); }, {x}));
}

GRADCHECK_CASE(max, "max") {
  // Distinct values on a shuffled grid: the max is never within eps of a tie.
  std::vector<double> v(3 * 5 * 7);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01 * static_cast<double>((i * 37) % v.size());
  Tensor x = Tensor::from_vector(v, {3, 5, 7});
  x.set_requires_grad(true);
  for (const auto& dims : kDimSets)
    for (bool keep : {false, true})
      EXPECT_TRUE(gradcheck([&](const auto& in) { return im::max(in[0], dims, keep); }, {x}));
}

GRADCHECK_CASE(var, "var") {
  Tensor x = random_input({3, 5, 7}, 4);
  for (const auto& dims : kDimSets)
    for (int64_t correction : {0, 1})
      for (bool keep : {false, true})
        EXPECT_TRUE(
            gradcheck([&](const auto& in) { return im::var(in[0], dims, correction, keep); }, {x}));
}
