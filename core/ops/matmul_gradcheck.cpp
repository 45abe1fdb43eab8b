// Gradient checks of matmul: plain, batched, broadcast batch dims, transposed operands.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(matmul_2d, "matmul") {
  for (auto [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 1, 1}, {3, 5, 7}, {17, 3, 1}, {1, 17, 3}}) {
    Tensor a = random_input({m, k}, 1), b = random_input({k, n}, 2);
    EXPECT_TRUE(gradcheck([](const auto& in) { return im::matmul(in[0], in[1]); }, {a, b}))
        << m << "x" << k << "x" << n;
  }
}

GRADCHECK_CASE(matmul_batched_and_broadcast, "matmul") {
  Tensor a = random_input({2, 3, 4, 5}, 3), b = random_input({2, 3, 5, 3}, 4);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::matmul(in[0], in[1]); }, {a, b}));
  Tensor w = random_input({5, 7}, 5);  // a weight shared across the batch
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::matmul(in[0], in[1]); }, {a, w}));
  Tensor c = random_input({3, 1, 4, 5}, 6), d = random_input({2, 5, 2}, 7);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::matmul(in[0], in[1]); }, {c, d}));
}

GRADCHECK_CASE(matmul_transposed_operands, "matmul", "permute") {
  Tensor a = random_input({5, 4}, 8), b = random_input({3, 5}, 9);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) { return im::matmul(in[0].transpose(0, 1), in[1].transpose(0, 1)); },
      {a, b}));
  // A slice with a row stride larger than its width.
  Tensor c = random_input({4, 9}, 10), e = random_input({3, 2}, 11);
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::matmul(in[0].slice(1, 2, 5), in[1]); }, {c, e}));
}
