// Gradient checks of the mixer's fused gates: gated_fusion with 0, 1 or 2 ys, with and
// without g and the alphas, and sigmoid_gate with and without a bias, at odd widths and row
// counts, on z / pre read in place as the second half of a [.., 2E] tensor and on
// transposed (copied) inputs.
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {

const std::vector<im::Shape>& shapes() {
  static const std::vector<im::Shape> s = {{3, 5, 7}, {2, 3}, {7}, {4, 1}, {1, 5}};
  return s;
}

// The second half of the last dim of t: a view with rows 2E apart, as split(uz) gives.
Tensor second_half(const Tensor& t) {
  const int64_t w = t.size(-1);
  return t.slice(t.dim() - 1, w / 2, w);
}

im::Shape doubled(im::Shape s) {
  s.back() *= 2;
  return s;
}

}  // namespace

GRADCHECK_CASE(gated_fusion_streams, "gated_fusion") {
  uint64_t seed = 600;
  for (const im::Shape& shape : shapes()) {
    const int64_t e = shape.back();
    const Tensor y0 = random_input(shape, seed++), y1 = random_input(shape, seed++);
    const Tensor g = random_input(shape, seed++), z = random_input(shape, seed++, -3, 3);
    const Tensor ah = random_input({e}, seed++, 0.5, 1.5), ag = random_input({e}, seed++);
    const std::string what = im::shape_str(shape);
    // Both scan directions and the global stream: all six inputs.
    EXPECT_TRUE(gradcheck(
        [](const auto& in) {
          return im::gated_fusion({in[0], in[1]}, in[2], in[3], in[4], in[5]);
        },
        {y0, y1, g, z, ah, ag}))
        << what << " 2 ys + g";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::gated_fusion({in[0]}, in[1], in[2], in[3], in[4]); },
        {y0, g, z, ah, ag}))
        << what << " 1 y + g";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) {
          return im::gated_fusion({in[0], in[1]}, Tensor(), in[2], in[3], {});
        },
        {y0, y1, z, ah}))
        << what << " 2 ys, no g";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::gated_fusion({in[0]}, Tensor(), in[1], in[2], {}); },
        {y0, z, ah}))
        << what << " 1 y, no g";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::gated_fusion({}, in[0], in[1], Tensor(), in[2]); },
        {g, z, ag}))
        << what << " no ys (global path only)";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::gated_fusion({in[0]}, Tensor(), in[1], {}, {}); }, {y0, z}))
        << what << " u alone (both paths off)";
  }
}

GRADCHECK_CASE(gated_fusion_same_y_twice, "gated_fusion") {
  const Tensor y = random_input({3, 5}, 620), z = random_input({3, 5}, 621, -3, 3);
  const Tensor ah = random_input({5}, 622);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::gated_fusion({in[0], in[0]}, Tensor(), in[1], in[2], {});
      },
      {y, z, ah}));
}

GRADCHECK_CASE(gated_fusion_strided_inputs, "gated_fusion") {
  // z read in place from a [.., 2E] tensor (rows 2E apart), g transposed (copied).
  const Tensor uz = random_input({2, 3, 10}, 630, -3, 3);
  const Tensor y = random_input({2, 3, 5}, 631), g = random_input({2, 5, 3}, 632);
  const Tensor ah = random_input({5}, 633), ag = random_input({5}, 634);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        const Tensor z = second_half(in[0]);
        const Tensor u = in[0].slice(2, 0, 5);  // the first half as the y
        return im::gated_fusion({in[1], u}, in[2].transpose(1, 2), z, in[3], in[4]);
      },
      {uz, y, g, ah, ag}));
  // Rows evenly spaced through two dims (every other row of the middle dim: read in place),
  // and not evenly spaced (the first half of the middle dim: copied).
  const Tensor y6 = random_input({2, 6, 5}, 638), g6 = random_input({2, 6, 5}, 639);
  const Tensor z6 = random_input({2, 3, 5}, 640, -3, 3);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::gated_fusion({in[0].slice(1, 0, 6, 2)}, in[1].slice(1, 0, 3), in[2], in[3],
                                in[4]);
      },
      {y6, g6, z6, ah, ag}))
      << "sliced middle dim";
  // Only the parameters need gradients.
  const Tensor yc = im::testing::random_constant({2, 3, 5}, 635);
  const Tensor gc = im::testing::random_constant({2, 3, 5}, 637);
  const Tensor zc = im::testing::random_constant(doubled({2, 3, 5}), 636, -3, 3);
  EXPECT_TRUE(gradcheck(
      [yc, gc, zc](const auto& in) {
        return im::gated_fusion({yc}, gc, second_half(zc), in[0], in[1]);
      },
      {ah, ag}))
      << "parameters only";
}

GRADCHECK_CASE(sigmoid_gate_bias, "sigmoid_gate") {
  uint64_t seed = 650;
  for (const im::Shape& shape : shapes()) {
    const Tensor pre = random_input(shape, seed++, -3, 3), g = random_input(shape, seed++);
    const Tensor b = random_input({shape.back()}, seed++);
    EXPECT_TRUE(gradcheck([](const auto& in) { return im::sigmoid_gate(in[0], in[1], in[2]); },
                          {pre, b, g}))
        << im::shape_str(shape);
    EXPECT_TRUE(gradcheck([](const auto& in) { return im::sigmoid_gate(in[0], Tensor(), in[1]); },
                          {pre, g}))
        << im::shape_str(shape) << " no bias";
  }
}

GRADCHECK_CASE(sigmoid_gate_strided_inputs, "sigmoid_gate") {
  const Tensor pre2 = random_input({3, 4, 14}, 660, -3, 3), g = random_input({7, 4, 3}, 661);
  const Tensor b = random_input({7}, 662);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::sigmoid_gate(second_half(in[0]), in[1], in[2].transpose(0, 2));
      },
      {pre2, b, g}));
}
