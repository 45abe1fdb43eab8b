// Gradient checks of linear: with and without bias, 2-D and 3-D x, odd sizes, and operands
// the op reads in place (a transposed weight, a sliced x) or copies (x with uneven rows).
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(linear, "linear") {
  uint64_t seed = 300;
  struct Case {
    im::Shape x_shape;  // [..., in]
    int64_t out;
  };
  // (Whole shapes spelled out: GCC 13 warns, wrongly, on appending to a copied Shape here.)
  const Case cases[] = {{{1, 1}, 1}, {{7, 5}, 3},    {{3, 1}, 4},
                        {{1, 6}, 1}, {{2, 3, 5}, 3}, {{3, 1, 4}, 2}};
  for (const Case& c : cases) {
    const im::Shape& x_shape = c.x_shape;
    const int64_t in = x_shape.back(), out = c.out;
    Tensor x = random_input(x_shape, seed++);
    Tensor w = random_input({out, in}, seed++);
    Tensor b = random_input({out}, seed++);
    const std::string what = "x " + im::shape_str(x_shape) + " out " + std::to_string(out);
    EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1], v[2]); }, {x, w, b}))
        << what << " with bias";
    EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1], Tensor()); }, {x, w}))
        << what << " without bias";
  }
}

GRADCHECK_CASE(linear_strided_operands, "linear", "permute", "slice") {
  // W given as the transpose of an [in, out] tensor (column-major, read in place).
  Tensor x = random_input({2, 3, 5}, 320), wt = random_input({5, 4}, 321);
  Tensor b = random_input({4}, 322);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1].transpose(0, 1), v[2]); },
                        {x, wt, b}));
  // x a column slice: rows evenly spaced with a stride wider than the row (in place).
  Tensor xs = random_input({3, 4, 9}, 323), w = random_input({2, 4}, 324);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0].slice(2, 3, 7), v[1], v[2]); },
                        {xs, w, random_input({2}, 325)}));
  // x with unevenly spaced rows (a slice of the middle dim): copied before the GEMM.
  Tensor xu = random_input({2, 5, 3}, 326), wu = random_input({4, 3}, 327);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0].slice(1, 1, 4), v[1], v[2]); },
                        {xu, wu, random_input({4}, 328)}));
}

GRADCHECK_CASE(linear_only_some_inputs_need_grad, "linear") {
  // A constant x (only W and b get gradients), and a constant bias: the bias gradient then
  // comes from no GEMM, and the weight gradient from the plain one.
  Tensor x = im::testing::random_constant({4, 3}, 330), w = random_input({5, 3}, 331);
  Tensor b = random_input({5}, 332);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1], v[2]); }, {x, w, b}));
  Tensor x2 = random_input({4, 3}, 333), w2 = im::testing::random_constant({5, 3}, 334);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1], v[2]); }, {x2, w2, b}));
  Tensor bc = im::testing::random_constant({5}, 335);
  EXPECT_TRUE(gradcheck([](const auto& v) { return im::linear(v[0], v[1], v[2]); }, {x2, w, bc}));
}
