// Dropout and drop-path: drop rate, scaling, reproducibility from the generator state,
// argument errors, and the backward mask.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

using im::DType;
using im::Generator;
using im::Shape;
using im::Tensor;

namespace {
int64_t count_zeros(const std::vector<float>& v) {
  int64_t n = 0;
  for (float e : v) n += e == 0.0f;
  return n;
}
}  // namespace

TEST(Dropout, DropsAboutPAndScalesTheRest) {
  for (double p : {0.1, 0.3, 0.75}) {
    Generator g(11);
    const int64_t n = 200000;
    const Tensor y = im::dropout(Tensor::ones({n}), p, g);
    const auto v = y.to_vector<float>();
    const double frac = static_cast<double>(count_zeros(v)) / n;
    // Binomial standard deviation is below 0.0011 here; allow 5 sigma.
    EXPECT_NEAR(frac, p, 0.005) << "p=" << p;
    const float kept = static_cast<float>(1.0 / (1.0 - p));
    for (float e : v) {
      if (e != 0.0f) {
        ASSERT_EQ(e, kept) << "p=" << p;
      }
    }
  }
}

TEST(Dropout, KeptValuesAreScaledInputs) {
  Generator g(12);
  Generator init(13);
  const Tensor x = im::rand_uniform({4, 33}, init, 0.5, 1.5, DType::Float64);
  const auto xv = x.to_vector<double>();
  const auto yv = im::dropout(x, 0.4, g).to_vector<double>();
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0) continue;
    ++kept;
    EXPECT_DOUBLE_EQ(yv[i], xv[i] / 0.6);
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, static_cast<int64_t>(xv.size()));
}

TEST(Dropout, SameStateSameMaskDifferentStateDifferentMask) {
  const Tensor x = Tensor::ones({1000});
  Generator a(21), b(21), c(22);
  const auto ya = im::dropout(x, 0.5, a).to_vector<float>();
  EXPECT_EQ(im::dropout(x, 0.5, b).to_vector<float>(), ya);  // same seed
  EXPECT_NE(im::dropout(x, 0.5, c).to_vector<float>(), ya);  // other seed
  EXPECT_EQ(a.state(), b.state());
  // The draw advanced the state: the next call uses a different mask.
  EXPECT_NE(im::dropout(x, 0.5, a).to_vector<float>(), ya);
  // Restoring a saved state replays the draw exactly.
  Generator r(0);
  r.set_state({21, 0});
  EXPECT_EQ(im::dropout(x, 0.5, r).to_vector<float>(), ya);
}

TEST(Dropout, MaskIsTheGeneratorsBernoulliMask) {
  // The contract a CUDA kernel must meet: the same (seed, offset) gives this mask.
  Generator a(31), b(31);
  const Shape shape{7, 13};
  const auto y = im::dropout(Tensor::ones(shape), 0.35, a).to_vector<float>();
  const auto m = im::bernoulli_mask(shape, 0.65, b).to_vector<uint8_t>();
  ASSERT_EQ(y.size(), m.size());
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i] != 0.0f, m[i] != 0) << i;
  EXPECT_EQ(a.state(), b.state());
}

TEST(Dropout, StridedInputUsesRowMajorMaskOrder) {
  Generator init(41);
  const Tensor x = im::rand_uniform({5, 6}, init, 0.5, 1.5);
  const Tensor xt = x.transpose(0, 1);
  Generator a(42), b(42);
  EXPECT_EQ(im::dropout(xt, 0.5, a).to_vector<float>(),
            im::dropout(xt.contiguous(), 0.5, b).to_vector<float>());
}

TEST(Dropout, ZeroPIsIdentityWithoutDrawing) {
  Generator g(51);
  const Tensor x = Tensor::full({3, 4}, 2.5);
  const Tensor y = im::dropout(x, 0.0, g);
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(g.state(), (im::GeneratorState{51, 0}));
}

TEST(Dropout, POutsideRangeIsAnError) {
  Generator g(61);
  const Tensor x = Tensor::ones({4});
  for (double p : {1.0, -0.1, 1.5, std::nan("")}) {
    EXPECT_THROW(im::dropout(x, p, g), im::Error) << p;
    EXPECT_THROW(im::drop_path(x, p, g), im::Error) << p;
  }
  EXPECT_THROW(im::dropout(Tensor::ones({4}, DType::Int64), 0.5, g), im::Error);
  // Rejected calls draw nothing.
  EXPECT_EQ(g.state(), (im::GeneratorState{61, 0}));
}

TEST(Dropout, BackwardUsesTheForwardMask) {
  Generator g(71);
  Tensor x = Tensor::ones({257}, DType::Float64);
  x.set_requires_grad(true);
  const Tensor y = im::dropout(x, 0.3, g);
  im::sum(y).backward();
  const auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_DOUBLE_EQ(gv[i], yv[i]) << i;  // x = 1
}

TEST(DropPath, ZeroesWholeSamples) {
  Generator g(81);
  Generator init(82);
  const int64_t B = 64;
  const Tensor x = im::rand_uniform({B, 5, 6}, init, 0.5, 1.5, DType::Float64);
  const Tensor y = im::drop_path(x, 0.5, g);
  const auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
  int64_t dropped = 0;
  for (int64_t b = 0; b < B; ++b) {
    const bool sample_dropped = yv[b * 30] == 0.0;
    dropped += sample_dropped;
    for (int64_t i = 0; i < 30; ++i) {
      const size_t k = static_cast<size_t>(b * 30 + i);
      if (sample_dropped) {
        EXPECT_EQ(yv[k], 0.0) << "sample " << b;
      } else {
        EXPECT_DOUBLE_EQ(yv[k], xv[k] * 2.0) << "sample " << b;
      }
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, B);
  // One draw per sample, not per element.
  Generator ref(81);
  EXPECT_EQ(im::bernoulli_mask({B}, 0.5, ref).to_vector<uint8_t>().size(), static_cast<size_t>(B));
  EXPECT_EQ(g.state(), ref.state());
}

TEST(DropPath, DropRateAndReproducibility) {
  Generator g(91), h(91);
  const Tensor x = Tensor::ones({8000, 3});
  const auto y = im::drop_path(x, 0.25, g).to_vector<float>();
  EXPECT_EQ(im::drop_path(x, 0.25, h).to_vector<float>(), y);
  const double frac = static_cast<double>(count_zeros(y)) / 24000.0;
  EXPECT_NEAR(frac, 0.25, 0.025);
  EXPECT_NE(im::drop_path(x, 0.25, g).to_vector<float>(), y);
}

TEST(DropPath, ZeroPAndShapeErrors) {
  Generator g(101);
  const Tensor x = Tensor::full({3, 2}, 1.5);
  EXPECT_EQ(im::drop_path(x, 0.0, g).to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(g.state(), (im::GeneratorState{101, 0}));
  EXPECT_THROW(im::drop_path(Tensor::scalar(1.0), 0.5, g), im::Error);
}

TEST(DropPath, BackwardZeroesDroppedSamples) {
  Generator g(111);
  Tensor x = Tensor::ones({32, 4}, DType::Float64);
  x.set_requires_grad(true);
  const Tensor y = im::drop_path(x, 0.5, g);
  im::sum(y).backward();
  const auto yv = y.to_vector<double>(), gv = x.grad().to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) EXPECT_DOUBLE_EQ(gv[i], yv[i]) << i;
}

// A rank holding samples [offset, offset + n) of a global batch gets exactly the mask one
// process would apply to those samples, and its generator advances the same way.
TEST(DropPath, SliceOfGlobalBatchMatchesWholeBatch) {
  std::vector<float> values(60);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + static_cast<float>(i);
  const Tensor whole = Tensor::from_vector(values, {12, 5});
  Generator g_whole(77), g_a(77), g_b(77);
  const auto full = im::drop_path(whole, 0.5, g_whole).to_vector<float>();
  const auto a = im::drop_path(whole.slice(0, 0, 7), 0.5, g_a, 0, 12).to_vector<float>();
  const auto b = im::drop_path(whole.slice(0, 7, 12), 0.5, g_b, 7, 12).to_vector<float>();
  std::vector<float> joined(a);
  joined.insert(joined.end(), b.begin(), b.end());
  EXPECT_EQ(joined, full);
  EXPECT_EQ(g_a.state(), g_whole.state());
  EXPECT_EQ(g_b.state(), g_whole.state());
  EXPECT_GT(count_zeros(full), 0);
  EXPECT_THROW(im::drop_path(whole.slice(0, 7, 12), 0.5, g_b, 8, 12), im::Error);
}
