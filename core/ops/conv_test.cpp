// Convolutions against direct loops, output sizes, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

using im::DType;
using im::Generator;
using im::Shape;
using im::Tensor;

namespace {

Tensor random(const Shape& shape, uint64_t seed, DType dtype = DType::Float64) {
  Generator g(seed);
  return im::rand_uniform(shape, g, -1.0, 1.0, dtype);
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

// y[b,t,c] = bias[c] + sum_j w[c,j] x[b, t-K+1+j, c] (reverse: x[b, t+K-1-j, c]), zero
// outside [0, L), written out directly.
std::vector<double> conv1d_direct(const Tensor& x, const Tensor& w, const Tensor& bias,
                                  bool reverse = false) {
  const int64_t B = x.size(0), L = x.size(1), C = x.size(2), K = w.size(1);
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(C, 0.0);
  std::vector<double> y(B * L * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < C; ++c) {
        double acc = bv[c];
        for (int64_t j = 0; j < K; ++j) {
          const int64_t s = reverse ? t + K - 1 - j : t - K + 1 + j;
          if (s >= 0 && s < L) acc += wv[c * K + j] * xv[(b * L + s) * C + c];
        }
        y[(b * L + t) * C + c] = acc;
      }
  return y;
}

// The output and the gradients of x, w and bias (bias may be undefined) of f under the
// upstream gradient `up`, each as exact values.
struct Conv1dRun {
  std::vector<double> y, dx, dw, db;
};

using Conv1dFn = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>;

Conv1dRun run_conv1d(const Conv1dFn& f, const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Tensor& up) {
  auto leaf = [](const Tensor& t) {
    if (!t.defined()) return Tensor();
    Tensor l = t.detach().clone();
    l.set_requires_grad(true);
    return l;
  };
  const Tensor xl = leaf(x), wl = leaf(w), bl = leaf(bias);
  const Tensor y = f(xl, wl, bl);
  y.backward(up);
  Conv1dRun run{
      y.to_vector<double>(), xl.grad().to_vector<double>(), wl.grad().to_vector<double>(), {}};
  if (bl.defined()) run.db = bl.grad().to_vector<double>();
  return run;
}

void expect_same_run(const Conv1dRun& got, const Conv1dRun& want, const std::string& what) {
  EXPECT_EQ(got.y, want.y) << what << " forward";
  EXPECT_EQ(got.dx, want.dx) << what << " dx";
  EXPECT_EQ(got.dw, want.dw) << what << " dw";
  EXPECT_EQ(got.db, want.db) << what << " dbias";
}

struct Conv1dCase {
  int64_t B, L, C, K;
};

// Odd sizes, K = 1, and L < K (taps that read only padding).
const Conv1dCase kConv1dCases[] = {{1, 1, 3, 4}, {2, 7, 3, 4}, {3, 5, 5, 3},
                                   {2, 9, 4, 1}, {2, 3, 5, 4}, {1, 2, 7, 3}};

std::vector<double> conv2d_direct(const Tensor& x, const Tensor& w, const Tensor& bias,
                                  int64_t stride, int64_t pad) {
  const int64_t B = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = w.size(0), kh = w.size(2), kw = w.size(3);
  const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  const auto bv = bias.defined() ? bias.to_vector<double>() : std::vector<double>(Cout, 0.0);
  std::vector<double> y(B * Cout * Ho * Wo);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t o = 0; o < Cout; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          double acc = bv[o];
          for (int64_t c = 0; c < Cin; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ih = oh * stride - pad + i, iw = ow * stride - pad + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc +=
                    wv[((o * Cin + c) * kh + i) * kw + j] * xv[((b * Cin + c) * H + ih) * W + iw];
              }
          y[((b * Cout + o) * Ho + oh) * Wo + ow] = acc;
        }
  return y;
}

}  // namespace

TEST(Conv1d, MatchesDirectLoop) {
  struct Case {
    int64_t B, L, C, K;
  };
  for (const Case& c : std::vector<Case>{{1, 1, 3, 4}, {2, 7, 3, 4}, {2, 7, 3, 1}, {3, 9, 16, 4}}) {
    const Tensor x = random({c.B, c.L, c.C}, 1), w = random({c.C, c.K}, 2), b = random({c.C}, 3);
    const Tensor y = im::causal_depthwise_conv1d(x, w, b);
    EXPECT_EQ(y.shape(), x.shape());
    expect_near_all(y.to_vector<double>(), conv1d_direct(x, w, b), 1e-12);
    expect_near_all(im::causal_depthwise_conv1d(x, w, Tensor()).to_vector<double>(),
                    conv1d_direct(x, w, Tensor()), 1e-12);
  }
}

TEST(Conv1d, IsCausal) {
  // Changing x at time s must leave y before s untouched.
  Tensor x = random({1, 6, 3}, 4);
  const Tensor w = random({3, 4}, 5);
  const auto before = im::causal_depthwise_conv1d(x, w, Tensor()).to_vector<double>();
  x.data<double>()[3 * 3 + 1] += 10.0;  // t = 3, c = 1
  const auto after = im::causal_depthwise_conv1d(x, w, Tensor()).to_vector<double>();
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t c = 0; c < 3; ++c) {
      const bool may_change = t >= 3 && c == 1;
      if (!may_change) {
        EXPECT_EQ(before[t * 3 + c], after[t * 3 + c]) << "t=" << t << " c=" << c;
      } else {
        EXPECT_NE(before[t * 3 + c], after[t * 3 + c]) << "t=" << t << " c=" << c;
      }
    }
}

TEST(Conv1d, Float32MatchesFloat64AndStridedInput) {
  const Tensor x = random({2, 11, 5}, 6), w = random({5, 4}, 7), b = random({5}, 8);
  const auto ref = conv1d_direct(x, w, b);
  expect_near_all(
      im::causal_depthwise_conv1d(x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32))
          .to_vector<double>(),
      ref, 1e-5);
  // The same data reached through a transposed view.
  const Tensor xt = x.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(xt.is_contiguous());
  expect_near_all(im::causal_depthwise_conv1d(xt, w, b).to_vector<double>(), ref, 1e-12);
}

TEST(Conv1d, ReverseMatchesDirectLoopAndIsAntiCausal) {
  uint64_t seed = 300;
  for (const Conv1dCase& c : kConv1dCases) {
    const Tensor x = random({c.B, c.L, c.C}, seed++), w = random({c.C, c.K}, seed++);
    const Tensor b = random({c.C}, seed++);
    expect_near_all(im::causal_depthwise_conv1d(x, w, b, {.reverse = true}).to_vector<double>(),
                    conv1d_direct(x, w, b, true), 1e-12);
  }
  // Changing x at time s must leave y after s untouched.
  Tensor x = random({1, 6, 3}, 310);
  const Tensor w = random({3, 4}, 311);
  const auto before = im::causal_depthwise_conv1d(x, w, Tensor(), {.reverse = true});
  x.data<double>()[3 * 3 + 1] += 10.0;  // t = 3, c = 1
  const auto after = im::causal_depthwise_conv1d(x, w, Tensor(), {.reverse = true});
  const auto bv = before.to_vector<double>(), av = after.to_vector<double>();
  for (int64_t t = 0; t < 6; ++t)
    for (int64_t c = 0; c < 3; ++c) {
      if (t <= 3 && c == 1) {
        EXPECT_NE(bv[t * 3 + c], av[t * 3 + c]) << "t=" << t << " c=" << c;
      } else {
        EXPECT_EQ(bv[t * 3 + c], av[t * 3 + c]) << "t=" << t << " c=" << c;
      }
    }
}

TEST(Conv1d, ReverseIsExactlyFlipConvFlip) {
  // The same numbers as the two flips around the causal conv, output and every gradient,
  // with and without SiLU, in both dtypes: the kernels walk time backwards in the same
  // order of operations.
  uint64_t seed = 320;
  for (DType dt : {DType::Float64, DType::Float32})
    for (const Conv1dCase& c : kConv1dCases)
      for (bool silu : {false, true})
        for (bool with_bias : {true, false}) {
          const Tensor x = random({c.B, c.L, c.C}, seed++, dt), w = random({c.C, c.K}, seed++, dt);
          const Tensor b = with_bias ? random({c.C}, seed++, dt) : Tensor();
          const Tensor up = random({c.B, c.L, c.C}, seed++, dt);
          const Conv1dRun want = run_conv1d(
              [silu](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
                return im::flip(
                    im::causal_depthwise_conv1d(im::flip(xi, 1), wi, bi, {.silu = silu}), 1);
              },
              x, w, b, up);
          const Conv1dRun got = run_conv1d(
              [silu](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
                return im::causal_depthwise_conv1d(xi, wi, bi, {.reverse = true, .silu = silu});
              },
              x, w, b, up);
          expect_same_run(got, want,
                          std::string(im::dtype_name(dt)) + " B=" + std::to_string(c.B) +
                              " L=" + std::to_string(c.L) + " C=" + std::to_string(c.C) +
                              " K=" + std::to_string(c.K) + (silu ? " silu" : "") +
                              (with_bias ? " bias" : ""));
        }
}

TEST(Conv1d, SiluIsExactlySiluOfConv) {
  // Fused SiLU: the same numbers as the silu op on the conv's output, gradients included
  // (the backward recomputes the pre-activation instead of saving it).
  uint64_t seed = 340;
  for (DType dt : {DType::Float64, DType::Float32})
    for (const Conv1dCase& c : kConv1dCases)
      for (bool reverse : {false, true})
        for (bool with_bias : {true, false}) {
          const Tensor x = random({c.B, c.L, c.C}, seed++, dt), w = random({c.C, c.K}, seed++, dt);
          const Tensor b = with_bias ? random({c.C}, seed++, dt) : Tensor();
          const Tensor up = random({c.B, c.L, c.C}, seed++, dt);
          const Conv1dRun want = run_conv1d(
              [reverse](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
                return im::silu(im::causal_depthwise_conv1d(xi, wi, bi, {.reverse = reverse}));
              },
              x, w, b, up);
          const Conv1dRun got = run_conv1d(
              [reverse](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
                return im::causal_depthwise_conv1d(xi, wi, bi, {.reverse = reverse, .silu = true});
              },
              x, w, b, up);
          expect_same_run(got, want,
                          std::string(im::dtype_name(dt)) + " B=" + std::to_string(c.B) +
                              " L=" + std::to_string(c.L) + " C=" + std::to_string(c.C) +
                              " K=" + std::to_string(c.K) + (reverse ? " reverse" : "") +
                              (with_bias ? " bias" : ""));
        }
}

TEST(Conv1d, RowStridedInputIsReadInPlace) {
  // x = one half of a [B, L, 2C] tensor (rows 2C apart): the same numbers as its
  // contiguous copy, and the gradient lands in that half of the base only.
  const Tensor base = random({3, 7, 10}, 360), w = random({5, 4}, 361), b = random({5}, 362);
  const Tensor up = random({3, 7, 5}, 363);
  for (int64_t half : {0, 1}) {
    for (bool reverse : {false, true}) {
      const im::DepthwiseConv1dOptions opts{.reverse = reverse, .silu = true};
      const Conv1dFn conv = [opts](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
        return im::causal_depthwise_conv1d(xi, wi, bi, opts);
      };
      const Conv1dRun want =
          run_conv1d(conv, base.slice(2, 5 * half, 5 * half + 5).contiguous(), w, b, up);
      Tensor bl = base.detach().clone();
      bl.set_requires_grad(true);
      const Tensor x = bl.slice(2, 5 * half, 5 * half + 5);
      ASSERT_FALSE(x.is_contiguous());
      const Tensor y = im::causal_depthwise_conv1d(x, w, b, opts);
      EXPECT_EQ(y.to_vector<double>(), want.y);
      y.backward(up);
      const Tensor g = bl.grad();
      EXPECT_EQ(g.slice(2, 5 * half, 5 * half + 5).to_vector<double>(), want.dx);
      for (double v : g.slice(2, 5 - 5 * half, 10 - 5 * half).to_vector<double>())
        EXPECT_EQ(v, 0.0);
    }
  }
}

TEST(Conv1d, RejectsBadShapes) {
  const Tensor x = random({2, 5, 3}, 9);
  EXPECT_THROW(im::causal_depthwise_conv1d(random({5, 3}, 1), random({3, 4}, 2), Tensor()),
               im::Error);
  EXPECT_THROW(im::causal_depthwise_conv1d(x, random({4, 4}, 2), Tensor()), im::Error);
  EXPECT_THROW(im::causal_depthwise_conv1d(x, random({3}, 2), Tensor()), im::Error);
  EXPECT_THROW(im::causal_depthwise_conv1d(x, random({3, 0}, 2), Tensor()), im::Error);
  EXPECT_THROW(im::causal_depthwise_conv1d(x, random({3, 4}, 2), random({4}, 3)), im::Error);
  EXPECT_THROW(im::causal_depthwise_conv1d(x, random({3, 4}, 2, DType::Float32), Tensor()),
               im::Error);
  try {
    im::causal_depthwise_conv1d(x, random({4, 4}, 2), Tensor());
    FAIL() << "no error";
  } catch (const im::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("causal_depthwise_conv1d"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 4]"), std::string::npos) << msg;
  }
}

TEST(Conv2d, MatchesNaiveConvolution) {
  struct Case {
    int64_t B, Cin, H, W, Cout, kh, kw, stride, pad;
  };
  const std::vector<Case> cases = {{2, 3, 5, 6, 4, 3, 3, 1, 0}, {2, 3, 5, 6, 4, 3, 3, 1, 1},
                                   {1, 2, 7, 5, 3, 2, 3, 2, 0}, {2, 2, 6, 7, 3, 3, 2, 2, 1},
                                   {2, 3, 8, 8, 5, 4, 4, 4, 0}, {1, 3, 4, 5, 2, 1, 1, 1, 0},
                                   {1, 1, 3, 3, 2, 3, 3, 1, 1}, {3, 4, 9, 11, 6, 5, 2, 3, 2}};
  uint64_t seed = 20;
  for (const Case& c : cases) {
    const Tensor x = random({c.B, c.Cin, c.H, c.W}, seed++);
    const Tensor w = random({c.Cout, c.Cin, c.kh, c.kw}, seed++);
    const Tensor b = random({c.Cout}, seed++);
    const Tensor y = im::conv2d(x, w, b, c.stride, c.pad);
    const int64_t Ho = (c.H + 2 * c.pad - c.kh) / c.stride + 1;
    const int64_t Wo = (c.W + 2 * c.pad - c.kw) / c.stride + 1;
    EXPECT_EQ(y.shape(), (Shape{c.B, c.Cout, Ho, Wo}));
    expect_near_all(y.to_vector<double>(), conv2d_direct(x, w, b, c.stride, c.pad), 1e-12);
    expect_near_all(im::conv2d(x, w, Tensor(), c.stride, c.pad).to_vector<double>(),
                    conv2d_direct(x, w, Tensor(), c.stride, c.pad), 1e-12);
    const Tensor y32 = im::conv2d(x.to(DType::Float32), w.to(DType::Float32), b.to(DType::Float32),
                                  c.stride, c.pad);
    EXPECT_EQ(y32.dtype(), DType::Float32);
    expect_near_all(y32.to_vector<double>(), conv2d_direct(x, w, b, c.stride, c.pad), 1e-5);
  }
}

TEST(Conv2d, PatchEmbeddingShape) {
  // Fashion-MNIST nano preset: 28x28x1, patch 4 -> 7x7 = 49 tokens.
  const Tensor x = random({2, 1, 28, 28}, 40, DType::Float32);
  const Tensor w = random({64, 1, 4, 4}, 41, DType::Float32);
  const Tensor y = im::conv2d(x, w, random({64}, 42, DType::Float32), 4, 0);
  EXPECT_EQ(y.shape(), (Shape{2, 64, 7, 7}));
  // Each output reads exactly its own patch: changing one pixel changes one token.
  Tensor x2 = x.clone();
  x2.data<float>()[5 * 28 + 9] += 1.0f;  // row 5, col 9 -> patch (1, 2)
  const auto a = im::conv2d(x, w, Tensor(), 4, 0).to_vector<float>();
  const auto b = im::conv2d(x2, w, Tensor(), 4, 0).to_vector<float>();
  int64_t changed = 0;
  for (int64_t o = 0; o < 64; ++o)
    for (int64_t p = 0; p < 49; ++p) {
      const size_t i = static_cast<size_t>(o * 49 + p);
      if (p != 1 * 7 + 2) {
        EXPECT_EQ(a[i], b[i]) << "channel " << o << " token " << p;
      } else {
        changed += a[i] != b[i];
      }
    }
  EXPECT_GT(changed, 0);
}

TEST(Conv2d, RejectsBadArguments) {
  const Tensor x = random({2, 3, 5, 5}, 50);
  const Tensor w = random({4, 3, 3, 3}, 51);
  EXPECT_THROW(im::conv2d(random({3, 5, 5}, 1), w, Tensor()), im::Error);
  EXPECT_THROW(im::conv2d(x, random({4, 2, 3, 3}, 2), Tensor()), im::Error);  // Cin
  EXPECT_THROW(im::conv2d(x, random({4, 3, 3}, 2), Tensor()), im::Error);
  EXPECT_THROW(im::conv2d(x, random({4, 3, 6, 3}, 2), Tensor()), im::Error);  // too tall
  EXPECT_NO_THROW(im::conv2d(x, random({4, 3, 6, 3}, 2), Tensor(), 1, 1));    // fits padded
  EXPECT_THROW(im::conv2d(x, w, random({3}, 3)), im::Error);
  EXPECT_THROW(im::conv2d(x, w, Tensor(), 0, 0), im::Error);
  EXPECT_THROW(im::conv2d(x, w, Tensor(), 1, -1), im::Error);
  EXPECT_THROW(im::conv2d(x, w.to(DType::Float32), Tensor()), im::Error);
  try {
    im::conv2d(x, random({4, 2, 3, 3}, 2), Tensor());
    FAIL() << "no error";
  } catch (const im::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("conv2d"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[4, 2, 3, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2, 3, 5, 5]"), std::string::npos) << msg;
  }
}

TEST(Conv2d, BackwardLeavesNoTape) {
  const int64_t before = im::live_node_count();
  {
    Tensor x = random({2, 3, 6, 6}, 60), w = random({4, 3, 3, 3}, 61), b = random({4}, 62);
    x.set_requires_grad(true);
    w.set_requires_grad(true);
    b.set_requires_grad(true);
    Tensor y = im::conv2d(x, w, b, 2, 1);
    Tensor z = im::causal_depthwise_conv1d(y.reshape({2, 4, 9}).transpose(1, 2), random({4, 4}, 63),
                                           Tensor());
    im::sum(z).backward();
    EXPECT_TRUE(x.grad().defined());
    EXPECT_TRUE(w.grad().defined());
    EXPECT_EQ(b.grad().shape(), (Shape{4}));
  }
  EXPECT_EQ(im::live_node_count(), before);
}

TEST(Conv2d, BiasGradientCountsOutputPositions) {
  // d sum(y) / d bias[o] = B * Ho * Wo.
  Tensor x = random({2, 3, 7, 6}, 64), w = random({4, 3, 3, 2}, 65), b = random({4}, 66);
  b.set_requires_grad(true);
  im::sum(im::conv2d(x, w, b, 2, 1)).backward();  // Ho = 4, Wo = 4
  for (double g : b.grad().to_vector<double>()) EXPECT_DOUBLE_EQ(g, 2.0 * 4 * 4);
}
