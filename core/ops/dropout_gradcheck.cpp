// Gradient checks of dropout and drop-path. Each evaluation builds a fresh Generator with
// the same seed, so every finite-difference probe sees the same mask.
#include "tests/gradcheck.h"

#include "core/rng.h"

using im::Generator;
using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {
// The checks below are only meaningful if the fixed mask both keeps and drops something.
void expect_mixed_mask(const Tensor& y) {
  int64_t zeros = 0;
  const std::vector<double> v = y.to_vector<double>();
  for (double e : v) zeros += e == 0.0;
  EXPECT_GT(zeros, 0) << "mask dropped nothing";
  EXPECT_LT(zeros, static_cast<int64_t>(v.size())) << "mask dropped everything";
}
}  // namespace

GRADCHECK_CASE(dropout, "dropout") {
  Tensor x = random_input({3, 17}, 300, 0.5, 1.5);
  auto f = [](const auto& in) {
    Generator g(5);
    return im::dropout(in[0], 0.3, g);
  };
  EXPECT_TRUE(gradcheck(f, {x}));
  expect_mixed_mask(f(std::vector<Tensor>{x.detach()}));
  // A strided input and a larger p.
  Tensor xt = random_input({7, 5}, 301, 0.5, 1.5);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        Generator g(6);
        return im::dropout(in[0].transpose(0, 1), 0.6, g);
      },
      {xt}));
}

GRADCHECK_CASE(drop_path, "drop_path") {
  Tensor x = random_input({8, 3, 4}, 310, 0.5, 1.5);
  auto f = [](const auto& in) {
    Generator g(7);
    return im::drop_path(in[0], 0.4, g);
  };
  EXPECT_TRUE(gradcheck(f, {x}));
  expect_mixed_mask(f(std::vector<Tensor>{x.detach()}));
  // Composed with a residual add, as in a block: x + DropPath(f(x)).
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        Generator g(8);
        return im::add(in[0], im::drop_path(im::tanh(in[0]), 0.5, g));
      },
      {x}));
}
