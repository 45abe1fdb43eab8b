// Gradient checks of concat, stack (unsqueeze + concat) and split.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::gradcheck_multi;
using im::testing::random_constant;
using im::testing::random_input;

GRADCHECK_CASE(concat, "concat") {
  Tensor a = random_input({2, 3}, 151), b = random_input({2, 1}, 152),
         c = random_input({2, 5}, 153), e = random_input({2, 0}, 154);
  for (int64_t dim : {1, -1}) {
    EXPECT_TRUE(gradcheck(
        [dim](const auto& in) {
          return im::concat({in[0], in[1], in[2], in[3]}, dim);
        },
        {a, b, e, c}))
        << "dim " << dim;
  }
  Tensor p = random_input({1, 4}, 155), q = random_input({3, 4}, 156);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::concat({in[0], in[1]}, 0); }, {p, q}));
  // A constant input among differentiable ones, a non-contiguous one, and one used twice.
  const Tensor k = random_constant({2, 4}, 157);
  Tensor t = random_input({4, 2}, 158);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) {
        return im::concat({in[0], k, in[1].transpose(0, 1), in[0]}, 1);
      },
      {a, t}));
}

GRADCHECK_CASE(stack, "concat") {
  Tensor a = random_input({3, 5}, 161), b = random_input({3, 5}, 162),
         c = random_input({3, 5}, 163);
  for (int64_t dim : {0, 1, 2, -1}) {
    EXPECT_TRUE(gradcheck(
        [dim](const auto& in) {
          return im::stack({in[0], in[1], in[2]}, dim);
        },
        {a, b, c}))
        << "dim " << dim;
  }
  Tensor s = random_input({}, 164);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::stack({in[0], in[0]}, 0);
      },
      {s}))
      << "0-d inputs";
}

GRADCHECK_CASE(split, "split") {
  Tensor x = random_input({3, 7}, 171);
  EXPECT_TRUE(gradcheck_multi(
      [](const auto& in) {
        return im::split(in[0], {1, 0, 4, 2}, 1);
      },
      {x}));
  EXPECT_TRUE(gradcheck_multi([](const auto& in) { return im::split(in[0], {2, 1}, -2); }, {x}));
  // Split of a non-contiguous input, with parts rejoined in another order.
  Tensor y = random_input({5, 3}, 172);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        std::vector<Tensor> parts = im::split(in[0].transpose(0, 1), {3, 2}, 1);
        return im::concat({parts[1], parts[0]}, 1);
      },
      {y}));
}
