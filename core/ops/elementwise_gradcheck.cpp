// Gradient checks of the elementwise ops, with odd sizes and broadcast shapes.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {

// Binary ops over same shapes, broadcast shapes (both sides), and scalars.
void check_binary(Tensor (*op)(const Tensor&, const Tensor&), bool positive_rhs) {
  const double lo = positive_rhs ? 0.5 : -1.0, hi = positive_rhs ? 2.0 : 1.0;
  const std::vector<std::pair<im::Shape, im::Shape>> shapes = {
      {{1}, {1}}, {{3, 17}, {3, 17}}, {{3, 1, 5}, {4, 1}}, {{17}, {2, 3, 17}}, {{2, 3}, {}}};
  uint64_t seed = 1;
  for (const auto& [sa, sb] : shapes) {
    Tensor a = random_input(sa, seed++), b = random_input(sb, seed++, lo, hi);
    EXPECT_TRUE(gradcheck([op](const auto& in) { return op(in[0], in[1]); }, {a, b}))
        << im::shape_str(sa) << " with " << im::shape_str(sb);
  }
}

void check_unary(Tensor (*op)(const Tensor&), double lo, double hi) {
  for (const im::Shape& s : std::vector<im::Shape>{{1}, {3}, {17}, {3, 5, 7}}) {
    Tensor x = random_input(s, 42 + s.size(), lo, hi);
    EXPECT_TRUE(gradcheck([op](const auto& in) { return op(in[0]); }, {x})) << im::shape_str(s);
  }
}

}  // namespace

GRADCHECK_CASE(add, "add") {
  check_binary(&im::add, false);
}
GRADCHECK_CASE(sub, "sub") {
  check_binary(&im::sub, false);
}
GRADCHECK_CASE(mul, "mul") {
  check_binary(&im::mul, false);
}
GRADCHECK_CASE(div, "div") {
  check_binary(&im::div, true);
}

GRADCHECK_CASE(scalar_overloads, "add", "mul") {
  Tensor x = random_input({3, 4}, 3);
  EXPECT_TRUE(gradcheck([](const auto& in) { return (in[0] * 2.5 + 1.0) * in[0]; }, {x}));
}

GRADCHECK_CASE(neg, "neg") {
  check_unary(&im::neg, -2, 2);
}
GRADCHECK_CASE(exp, "exp") {
  check_unary(&im::exp, -2, 2);
}
GRADCHECK_CASE(log, "log") {
  check_unary(&im::log, 0.2, 3);
}
GRADCHECK_CASE(sqrt, "sqrt") {
  check_unary(&im::sqrt, 0.2, 3);
}
GRADCHECK_CASE(rsqrt, "rsqrt") {
  check_unary(&im::rsqrt, 0.2, 3);
}
GRADCHECK_CASE(tanh, "tanh") {
  check_unary(&im::tanh, -3, 3);
}
GRADCHECK_CASE(sigmoid, "sigmoid") {
  check_unary(&im::sigmoid, -4, 4);
}
GRADCHECK_CASE(silu, "silu") {
  check_unary(&im::silu, -4, 4);
}
GRADCHECK_CASE(gelu_tanh, "gelu_tanh") {
  check_unary(&im::gelu_tanh, -4, 4);
}
GRADCHECK_CASE(gelu_erf, "gelu_erf") {
  check_unary(&im::gelu_erf, -4, 4);
}

// abs and clamp are not differentiable at their kinks; keep inputs away from them.
GRADCHECK_CASE(abs, "abs") {
  Tensor x = random_input({3, 17}, 5, 0.1, 2.0);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::abs(in[0] * in[1]); },
                        {x, im::testing::random_constant({3, 17}, 6, -1, 1)}));
}

GRADCHECK_CASE(clamp, "clamp") {
  // Values on a grid that avoids the bounds by more than eps.
  std::vector<double> v;
  for (int i = 0; i < 17; ++i) v.push_back(-2.05 + 0.25 * i);
  Tensor x = Tensor::from_vector(v, {17});
  x.set_requires_grad(true);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::clamp(in[0], -1.0, 1.0); }, {x}));
}

GRADCHECK_CASE(pow, "pow") {
  for (double e : {2.0, 3.0, 0.5, -1.5}) {
    Tensor x = random_input({3, 7}, 9, 0.3, 2.0);
    EXPECT_TRUE(gradcheck([e](const auto& in) { return im::pow(in[0], e); }, {x})) << e;
  }
}

GRADCHECK_CASE(softplus, "softplus") {
  Tensor x = random_input({5, 17}, 11, -6, 6);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::softplus(in[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::softplus(in[0], 2.0, 5.0); }, {x}));
  // Above the threshold the input passes through: gradient exactly 1.
  Tensor big = random_input({7}, 12, 25, 30);
  EXPECT_TRUE(gradcheck([](const auto& in) { return im::softplus(in[0]); }, {big}));
}
