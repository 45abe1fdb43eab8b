// Gradient checks of cumsum along first, middle, last and negative dims.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(cumsum_dims, "cumsum") {
  const std::vector<std::pair<im::Shape, int64_t>> cases = {
      {{1}, 0},       {{17}, -1},      {{3, 5, 7}, 0}, {{3, 5, 7}, 1},
      {{3, 5, 7}, 2}, {{3, 5, 7}, -2}, {{3, 1}, 1}};
  uint64_t seed = 61;
  for (const auto& [shape, dim] : cases) {
    Tensor x = random_input(shape, seed++);
    EXPECT_TRUE(gradcheck([dim](const auto& in) { return im::cumsum(in[0], dim); }, {x}))
        << im::shape_str(shape) << " dim " << dim;
  }
}

GRADCHECK_CASE(cumsum_non_contiguous, "cumsum") {
  Tensor x = random_input({5, 3, 4}, 71);
  for (int64_t dim : {0, 1, 2}) {
    EXPECT_TRUE(
        gradcheck([dim](const auto& in) { return im::cumsum(in[0].transpose(0, 2), dim); }, {x}))
        << "dim " << dim;
  }
}
