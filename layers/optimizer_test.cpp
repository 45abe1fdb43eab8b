#include "layers/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "layers/basic.h"

using im::DType;
using im::Tensor;
using namespace im::layers;

namespace {
// A module with one decayed matrix and one exempt vector.
class Toy : public Module {
 public:
  Toy() {
    w = &register_parameter("w", Tensor::from_vector<double>({1.0, -2.0}, {1, 2}),
                            {.weight_decay = true});
    b = &register_parameter("b", Tensor::from_vector<double>({0.5}, {1}));
  }
  Tensor* w;
  Tensor* b;
};
}  // namespace

TEST(AdamW, TwoStepsMatchTheClosedForm) {
  Toy toy;
  ParameterStore store(toy, DType::Float64);
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  AdamW opt(store, cfg);
  const double lr = 0.01, g1 = 0.3, g2 = -0.2;
  double p = 1.0, m = 0, v = 0, pb = 0.5, mb = 0, vb = 0;
  for (int t = 1; t <= 2; ++t) {
    const double g = t == 1 ? g1 : g2;
    store.zero_grad();
    toy.w->grad().fill_(g);
    toy.b->grad().fill_(g);
    opt.step(lr);
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
    p = p - lr * 0.1 * p - lr * (m / bc1) / (std::sqrt(v / bc2) + 1e-8);
    mb = 0.9 * mb + 0.1 * g;
    vb = 0.999 * vb + 0.001 * g * g;
    pb = pb - lr * (mb / bc1) / (std::sqrt(vb / bc2) + 1e-8);  // no decay on the bias
  }
  EXPECT_NEAR(toy.w->to_vector<double>()[0], p, 1e-12);
  EXPECT_NEAR(toy.b->to_vector<double>()[0], pb, 1e-12);
  EXPECT_EQ(opt.steps_taken(), 2);
}

TEST(ClipGradNorm, ScalesOnlyAboveTheThreshold) {
  Toy toy;
  ParameterStore store(toy, DType::Float64);
  toy.w->grad().copy_(Tensor::from_vector<double>({3.0, 0.0}, {1, 2}));
  toy.b->grad().fill_(4.0);
  EXPECT_NEAR(clip_grad_norm(store, 10.0), 5.0, 1e-12);
  EXPECT_NEAR(toy.b->grad().item(), 4.0, 1e-12);
  EXPECT_NEAR(clip_grad_norm(store, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(toy.b->grad().item(), 0.8, 1e-6);
}

TEST(LearningRate, WarmupThenCosine) {
  ScheduleConfig s;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.min_lr = 0.0;
  EXPECT_NEAR(learning_rate(s, 1.0, 0), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 1.0, 9), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(s, 1.0, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate(s, 1.0, 60), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(s, 1.0, 110), 0.0, 1e-12);
  s.kind = "constant";
  EXPECT_NEAR(learning_rate(s, 1.0, 100), 1.0, 1e-12);
}

TEST(ClipGradNormChecked, ClipsAsClipGradNormAndPassesFiniteSteps) {
  Toy toy;
  ParameterStore store(toy, DType::Float64);
  toy.w->grad().copy_(Tensor::from_vector<double>({3.0, 0.0}, {1, 2}));
  toy.b->grad().fill_(4.0);
  const ClipOutcome clip =
      clip_grad_norm_checked(store, 1.0, Tensor::from_vector<double>({2.5}, {1}));
  EXPECT_NEAR(clip.norm(), 5.0, 1e-12);
  EXPECT_TRUE(clip.finite());
  EXPECT_NEAR(clip.status.to_vector<double>()[kClipScaleField], 1.0 / (5.0 + 1e-6), 1e-15);
  EXPECT_NEAR(toy.b->grad().item(), 0.8, 1e-6);
  AdamW opt(store, OptimConfig{});
  const double before = toy.b->item();
  opt.step(0.1, &clip);
  EXPECT_NE(toy.b->item(), before);
  EXPECT_EQ(opt.steps_taken(), 1);
}

// A loss or a gradient that is not finite: nothing is scaled, and AdamW given the outcome
// leaves the parameters and moments as they were.
TEST(ClipGradNormChecked, NonFiniteLossOrGradientSkipsTheUpdate) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& [loss, grad] : {std::pair{nan, 4.0}, std::pair{inf, 4.0}, std::pair{1.0, inf}}) {
    Toy toy;
    ParameterStore store(toy, DType::Float64);
    toy.w->grad().fill_(grad);
    toy.b->grad().fill_(4.0);
    const ClipOutcome clip =
        clip_grad_norm_checked(store, 1.0, Tensor::from_vector<double>({loss}, {1}));
    EXPECT_FALSE(clip.finite()) << loss << " " << grad;
    EXPECT_EQ(toy.b->grad().item(), 4.0);  // not scaled
    AdamW opt(store, OptimConfig{});
    const std::vector<double> params = store.flat_params().to_vector<double>();
    opt.step(0.1, &clip);
    EXPECT_EQ(store.flat_params().to_vector<double>(), params);
    EXPECT_EQ(opt.exp_avg().to_vector<double>(), std::vector<double>(params.size(), 0.0));
  }
}
