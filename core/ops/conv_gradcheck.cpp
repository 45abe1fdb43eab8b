// Gradient checks of the convolutions: causal depthwise conv1d and conv2d (im2col + GEMM).
#include "tests/gradcheck.h"

using im::Shape;
using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

GRADCHECK_CASE(causal_depthwise_conv1d, "causal_depthwise_conv1d") {
  struct Case {
    int64_t B, L, C, K;
  };
  // K > L exercises taps that read only padding; K = 1 is a per-channel scale.
  const std::vector<Case> cases = {{1, 1, 3, 4}, {2, 3, 3, 4}, {2, 7, 3, 4},
                                   {1, 7, 3, 1}, {2, 3, 3, 1}, {2, 7, 5, 3}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    Tensor x = random_input({c.B, c.L, c.C}, seed++);
    Tensor w = random_input({c.C, c.K}, seed++);
    Tensor b = random_input({c.C}, seed++);
    const std::string what = "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
                             " C=" + std::to_string(c.C) + " K=" + std::to_string(c.K);
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::causal_depthwise_conv1d(in[0], in[1], in[2]); }, {x, w, b}))
        << what << " with bias";
    EXPECT_TRUE(gradcheck(
        [](const auto& in) { return im::causal_depthwise_conv1d(in[0], in[1], Tensor()); }, {x, w}))
        << what << " without bias";
  }
}

GRADCHECK_CASE(causal_depthwise_conv1d_strided_input, "causal_depthwise_conv1d") {
  // x arrives as a transposed view [B, C, L] -> [B, L, C]; only the weight needs a grad.
  Tensor x = random_input({2, 3, 7}, 120);
  Tensor w = random_input({3, 4}, 121);
  Tensor b = im::testing::random_constant({3}, 122);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::causal_depthwise_conv1d(in[0].transpose(1, 2), in[1], in[2]);
      },
      {x, w, b}));
}

GRADCHECK_CASE(causal_depthwise_conv1d_reverse_silu, "causal_depthwise_conv1d") {
  struct Case {
    int64_t B, L, C, K;
  };
  // Odd sizes; L < K: taps that read only padding (on the right with reverse).
  const std::vector<Case> cases = {{1, 1, 3, 4}, {2, 3, 5, 4}, {2, 7, 3, 4},
                                   {1, 7, 5, 1}, {2, 5, 3, 3}, {1, 2, 3, 3}};
  struct Flags {
    bool reverse, silu;
  };
  uint64_t seed = 140;
  for (const Case& c : cases) {
    for (const Flags f : {Flags{true, false}, Flags{false, true}, Flags{true, true}}) {
      // Inputs of size ~2 so SiLU's curvature shows in the differences.
      Tensor x = random_input({c.B, c.L, c.C}, seed++, -2.0, 2.0);
      Tensor w = random_input({c.C, c.K}, seed++);
      Tensor b = random_input({c.C}, seed++);
      const im::DepthwiseConv1dOptions opts{.reverse = f.reverse, .silu = f.silu};
      const std::string what = "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
                               " C=" + std::to_string(c.C) + " K=" + std::to_string(c.K) +
                               (f.reverse ? " reverse" : "") + (f.silu ? " silu" : "");
      EXPECT_TRUE(gradcheck(
          [opts](const auto& in) { return im::causal_depthwise_conv1d(in[0], in[1], in[2], opts); },
          {x, w, b}))
          << what << " with bias";
      EXPECT_TRUE(gradcheck(
          [opts](const auto& in) {
            return im::causal_depthwise_conv1d(in[0], in[1], Tensor(), opts);
          },
          {x, w}))
          << what << " without bias";
    }
  }
}

GRADCHECK_CASE(causal_depthwise_conv1d_row_strided_input, "causal_depthwise_conv1d") {
  // x is the second half of a [B, L, 2C] projection, read in place (the mixer's u); the
  // other half gets a zero gradient.
  Tensor xz = random_input({2, 5, 6}, 160, -2.0, 2.0);
  Tensor w = random_input({3, 4}, 161);
  Tensor b = random_input({3}, 162);
  for (const bool reverse : {false, true}) {
    EXPECT_TRUE(gradcheck(
        [reverse](const auto& in) {
          return im::causal_depthwise_conv1d(in[0].slice(2, 3, 6), in[1], in[2],
                                             {.reverse = reverse, .silu = true});
        },
        {xz, w, b}))
        << (reverse ? "reverse" : "causal");
  }
}

GRADCHECK_CASE(conv2d, "conv2d") {
  struct Case {
    int64_t B, Cin, H, W, Cout, kh, kw, stride, pad;
  };
  const std::vector<Case> cases = {
      {2, 3, 5, 6, 4, 3, 3, 1, 0},  // plain
      {2, 3, 5, 6, 4, 3, 3, 1, 1},  // same padding
      {1, 2, 7, 5, 3, 2, 3, 2, 0},  // non-square kernel, stride 2, ragged edge
      {2, 2, 6, 7, 3, 3, 2, 2, 1},  // stride 2 with padding
      {2, 3, 8, 8, 5, 4, 4, 4, 0},  // patch embedding: kernel = stride = p
      {1, 3, 4, 5, 2, 1, 1, 1, 0},  // 1x1
      {1, 1, 3, 3, 2, 3, 3, 1, 1},  // kernel as large as the image
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    Tensor x = random_input({c.B, c.Cin, c.H, c.W}, seed++);
    Tensor w = random_input({c.Cout, c.Cin, c.kh, c.kw}, seed++);
    Tensor b = random_input({c.Cout}, seed++);
    const int64_t s = c.stride, p = c.pad;
    const std::string what = "x " + im::shape_str(x.shape()) + " w " + im::shape_str(w.shape()) +
                             " stride " + std::to_string(s) + " padding " + std::to_string(p);
    EXPECT_TRUE(gradcheck([s, p](const auto& in) { return im::conv2d(in[0], in[1], in[2], s, p); },
                          {x, w, b}))
        << what << " with bias";
    EXPECT_TRUE(gradcheck(
        [s, p](const auto& in) { return im::conv2d(in[0], in[1], Tensor(), s, p); }, {x, w}))
        << what << " without bias";
  }
}

GRADCHECK_CASE(conv2d_strided_input, "conv2d") {
  // A channels-last buffer viewed as [B, Cin, H, W].
  Tensor x = random_input({2, 5, 6, 3}, 250);
  Tensor w = random_input({4, 3, 2, 3}, 251);
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        return im::conv2d(in[0].permute({0, 3, 1, 2}), in[1], Tensor(), 2, 1);
      },
      {x, w}));
}
