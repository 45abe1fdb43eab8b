// Gradient checks of layer_norm with and without weight / bias, odd widths, and
// non-contiguous inputs.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(layer_norm_affine, "layer_norm") {
  for (const im::Shape& shape : std::vector<im::Shape>{{3, 17}, {2, 3, 5}, {7}, {4, 1}}) {
    const int64_t d = shape.back();
    Tensor x = random_input(shape, 51, -2, 2);
    Tensor w = random_input({d}, 52, 0.5, 1.5), b = random_input({d}, 53);
    EXPECT_TRUE(
        gradcheck([](const auto& in) { return im::layer_norm(in[0], in[1], in[2]); }, {x, w, b}))
        << im::shape_str(shape);
  }
}

GRADCHECK_CASE(layer_norm_partial_affine, "layer_norm") {
  Tensor x = random_input({3, 17}, 54, -2, 2);
  Tensor w = random_input({17}, 55, 0.5, 1.5), b = random_input({17}, 56);
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::layer_norm(in[0], Tensor(), Tensor()); }, {x}))
      << "no weight, no bias";
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::layer_norm(in[0], in[1], Tensor()); }, {x, w}))
      << "weight only";
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::layer_norm(in[0], Tensor(), in[1]); }, {x, b}))
      << "bias only";
  // Only the parameters need gradients: dx is skipped.
  const Tensor xc = im::testing::random_constant({3, 17}, 57, -2, 2);
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::layer_norm(in[0], in[1], in[2]); }, {xc, w, b}))
      << "constant input";
}

GRADCHECK_CASE(layer_norm_non_contiguous, "layer_norm") {
  Tensor x = random_input({5, 3, 4}, 58, -2, 2);
  Tensor w = random_input({5}, 59, 0.5, 1.5), b = random_input({5}, 60);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) { return im::layer_norm(in[0].transpose(0, 2), in[1], in[2], 1e-3); },
      {x, w, b}));
}
