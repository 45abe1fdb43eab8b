#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(flip, "flip") {
  Tensor x = random_input({2, 7, 3}, 1);
  for (int64_t d : {0, 1, 2, -1})
    EXPECT_TRUE(gradcheck([d](const auto& in) { return im::flip(in[0], d) * in[0]; }, {x})) << d;
  // A strided input (transposed view) flips along its logical dim.
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::flip(in[0].transpose(0, 1), 0); }, {x}));
}
