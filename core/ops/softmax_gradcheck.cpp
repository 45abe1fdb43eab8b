// Gradient checks of softmax and log_softmax over first, middle, last and negative dims,
// on non-contiguous inputs, large logits and rows with masked (-inf) entries.
#include <limits>

#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {

using SoftmaxFn = Tensor (*)(const Tensor&, int64_t);

void check_dims(SoftmaxFn op) {
  const std::vector<std::pair<im::Shape, int64_t>> cases = {
      {{1}, 0},       {{17}, -1},     {{3, 17}, 0},    {{3, 17}, 1}, {{2, 3, 5}, 0},
      {{2, 3, 5}, 1}, {{2, 3, 5}, 2}, {{2, 3, 5}, -2}, {{4, 1}, 1}};
  uint64_t seed = 21;
  for (const auto& [shape, dim] : cases) {
    Tensor x = random_input(shape, seed++, -3, 3);
    EXPECT_TRUE(gradcheck([op, dim](const auto& in) { return op(in[0], dim); }, {x}))
        << im::shape_str(shape) << " dim " << dim;
  }
}

void check_transposed(SoftmaxFn op) {
  Tensor x = random_input({5, 3, 4}, 31, -2, 2);
  for (int64_t dim : {0, 1, -1}) {
    EXPECT_TRUE(
        gradcheck([op, dim](const auto& in) { return op(in[0].transpose(0, 2), dim); }, {x}))
        << "dim " << dim;
  }
}

}  // namespace

GRADCHECK_CASE(softmax_dims, "softmax") {
  check_dims(&im::softmax);
}
GRADCHECK_CASE(softmax_non_contiguous, "softmax") {
  check_transposed(&im::softmax);
}
GRADCHECK_CASE(log_softmax_dims, "log_softmax") {
  check_dims(&im::log_softmax);
}
GRADCHECK_CASE(log_softmax_non_contiguous, "log_softmax") {
  check_transposed(&im::log_softmax);
}

GRADCHECK_CASE(softmax_large_logits, "softmax", "log_softmax") {
  Tensor x = random_input({3, 7}, 41, 998, 1002);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::softmax(in[0], -1); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::log_softmax(in[0], 0); }, {x}));
}

// The concept assignment masks logits with -inf before the softmax (MODEL.md §2).
GRADCHECK_CASE(softmax_masked_logits, "softmax", "log_softmax", "masked_fill") {
  Tensor x = random_input({3, 5}, 43, -2, 2);
  const Tensor mask = Tensor::from_vector<uint8_t>({1, 0, 0, 1, 0}, {5});
  const double ninf = -std::numeric_limits<double>::infinity();
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::softmax(im::masked_fill(in[0], mask, ninf), -1); }, {x}));
  // log_softmax is -inf at masked entries; zero them so the checked sum stays finite.
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) {
        return im::masked_fill(im::log_softmax(im::masked_fill(in[0], mask, ninf), -1), mask, 0.0);
      },
      {x}));
}
