// Gradient checks of the view ops and copies (they route gradients, so a wrong stride
// or offset in backward shows up here).
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(reshape_view_and_copy, "reshape", "permute") {
  Tensor x = random_input({3, 4, 5}, 1);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return in[0].reshape({5, -1}) * in[0].reshape({5, 12});
      },
      {x}));
  // Reshape of a transposed tensor copies; the gradient must still land right.
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].transpose(0, 2).reshape({-1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].unsqueeze(1).flatten(0, 1); }, {x}));
}

GRADCHECK_CASE(permute, "permute") {
  Tensor x = random_input({2, 3, 5}, 2);
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].permute({2, 0, 1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].transpose(-1, -3); }, {x}));
}

GRADCHECK_CASE(slice, "slice") {
  Tensor x = random_input({5, 17}, 3);
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].slice(1, 2, 15, 3); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].slice(0, -2, 5); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].select(1, 4); }, {x}));
  // Two overlapping slices of one tensor: gradients sum where they overlap.
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return in[0].slice(1, 0, 10) * in[0].slice(1, 7, 17); }, {x}));
}

GRADCHECK_CASE(expand, "expand") {
  Tensor x = random_input({3, 1}, 4);
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].expand({2, 3, 7}); }, {x}));
  Tensor s = random_input({}, 5);
  EXPECT_TRUE(gradcheck([](const auto& in) { return in[0].expand({4}); }, {s}));
}

GRADCHECK_CASE(contiguous_and_clone, "contiguous", "clone") {
  Tensor x = random_input({4, 3}, 6);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return in[0].transpose(0, 1).contiguous() * in[0].clone().transpose(0, 1);
      },
      {x}));
}

GRADCHECK_CASE(cast, "cast") {
  // float64 -> float32 -> float64 loses precision; the gradient is still the identity,
  // so compare at float32-rounding tolerance.
  Tensor x = random_input({3, 5}, 7);
  im::testing::GradcheckOptions loose;
  loose.eps = 1e-3;
  loose.atol = 1e-4;
  loose.rtol = 1e-3;
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return in[0].to(im::DType::Float32).to(im::DType::Float64); },
                {x}, loose));
}
