// The tape: ordering, accumulation, NoGradGuard, retain_grad, hooks, and memory.
#include "core/autograd.h"

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"

using im::DType;
using im::Tensor;

namespace {
Tensor leaf(std::vector<double> v, const im::Shape& shape) {
  Tensor t = Tensor::from_vector(v, shape);
  t.set_requires_grad(true);
  return t;
}
}  // namespace

TEST(Autograd, ChainRuleAndAccumulationAcrossUses) {
  Tensor x = leaf({2.0, -3.0}, {2});
  // y = sum(x*x + 3x): dy/dx = 2x + 3, x used in three places.
  Tensor y = im::sum(im::add(im::mul(x, x), im::mul(x, 3.0)));
  y.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{7.0, -3.0}));
  // A second backward over a fresh graph accumulates into .grad.
  im::sum(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{8.0, -2.0}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, BackwardTwiceThroughTheSameGraphIsAClearError) {
  Tensor x = leaf({1.0, 2.0}, {2});
  Tensor y = im::sum(im::exp(x));
  y.backward();
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const im::Error& e) {
    EXPECT_NE(std::string(e.what()).find("a second time"), std::string::npos) << e.what();
  }
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = leaf({1.0, 2.0}, {2});
  EXPECT_THROW(im::exp(x).backward(), im::Error);
  Tensor y = im::mul(x, 2.0);
  y.backward(Tensor::from_vector<double>({1.0, 10.0}, {2}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2.0, 20.0}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1.0, 2.0}, {2});
  {
    im::NoGradGuard guard;
    EXPECT_FALSE(im::grad_enabled());
    Tensor y = im::mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    { im::NoGradGuard nested; }
    EXPECT_FALSE(im::grad_enabled()) << "a nested guard restores the outer state";
  }
  EXPECT_TRUE(im::grad_enabled());
  EXPECT_TRUE(im::mul(x, x).requires_grad());
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = leaf({3.0}, {1});
  Tensor y = im::mul(x.detach(), x);  // d/dx = x (the detached factor is a constant)
  im::sum(y).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{3.0}));
}

TEST(Autograd, RetainGradKeepsNonLeafGradients) {
  Tensor x = leaf({1.0, 2.0, 3.0}, {3});
  Tensor h = im::mul(x, 2.0);
  h.retain_grad();
  Tensor other = im::mul(x, 5.0);  // not retained
  Tensor y = im::sum(im::mul(h, h)) + im::sum(other);
  y.backward();
  ASSERT_TRUE(h.grad().defined());
  EXPECT_EQ(h.grad().to_vector<double>(), (std::vector<double>{4.0, 8.0, 12.0}));  // 2h
  EXPECT_FALSE(other.grad().defined());
  EXPECT_FALSE(h.is_leaf());
}

TEST(Autograd, GradReadyHookFiresOncePerParameterPerBackward) {
  Tensor w = leaf({0.5, -1.0}, {2});
  Tensor b = leaf({0.1}, {1});
  int w_calls = 0, b_calls = 0;
  std::vector<double> seen;
  w.register_grad_ready_hook([&](const Tensor& g) {
    ++w_calls;
    seen = g.to_vector<double>();
  });
  b.register_grad_ready_hook([&](const Tensor&) { ++b_calls; });
  for (int step = 1; step <= 3; ++step) {
    w.zero_grad();
    // w is used three times; the hook must see the complete gradient, once.
    Tensor y = im::sum(im::mul(w, w)) + im::sum(im::mul(w, 3.0)) + im::sum(im::add(w, b));
    y.backward();
    EXPECT_EQ(w_calls, step);
    EXPECT_EQ(b_calls, step);
    EXPECT_EQ(seen, (std::vector<double>{0.5 * 2 + 3 + 1, -1.0 * 2 + 3 + 1}));
  }
}

TEST(Autograd, HooksFireInReverseOrderOfUse) {
  // The reducer relies on parameters used last in forward being ready first.
  Tensor w1 = leaf({1.0}, {1}), w2 = leaf({2.0}, {1}), w3 = leaf({3.0}, {1});
  std::vector<int> order;
  w1.register_grad_ready_hook([&](const Tensor&) { order.push_back(1); });
  w2.register_grad_ready_hook([&](const Tensor&) { order.push_back(2); });
  w3.register_grad_ready_hook([&](const Tensor&) { order.push_back(3); });
  Tensor h = im::tanh(im::mul(w1, 0.5));
  h = im::tanh(im::mul(h, w2));
  h = im::tanh(im::mul(h, w3));
  im::sum(h).backward();
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
}

TEST(Autograd, IntermediateBuffersAreFreedDuringBackward) {
  im::Generator gen(1);
  Tensor w = im::randn({256, 256}, gen);
  w.set_requires_grad(true);
  Tensor x = im::randn({64, 256}, gen);
  auto& alloc = im::cpu_allocator();
  int64_t live_during = 0;
  w.register_grad_ready_hook([&](const Tensor&) { live_during = alloc.stats().live_bytes; });
  Tensor h = x;
  for (int i = 0; i < 8; ++i) h = im::tanh(im::matmul(h, w));
  Tensor loss = im::sum(h);
  const int64_t live_before = alloc.stats().live_bytes;
  loss.backward();
  // When w's gradient is complete, every saved activation (8 matmul inputs, 8 tanh
  // outputs: 16 x 64 KB) has been released: only the graph's outputs, w, x and the
  // gradient remain.
  EXPECT_LT(live_during, live_before - 8 * 64 * 256 * 4) << "saved tensors were not freed";
}

TEST(Autograd, NoTapeMemoryLeaksAcrossThousandSteps) {
  im::Generator gen(3);
  Tensor w1 = im::randn({16, 32}, gen), w2 = im::randn({32, 4}, gen);
  w1.set_requires_grad(true);
  w2.set_requires_grad(true);
  Tensor x = im::randn({8, 16}, gen);
  auto& alloc = im::cpu_allocator();
  int64_t live_after_first = -1, nodes_after_first = -1;
  for (int step = 0; step < 1000; ++step) {
    {
      Tensor h = im::gelu_tanh(im::matmul(x, w1));
      Tensor loss = im::mean(im::mul(im::matmul(h, w2), im::matmul(h, w2)));
      loss.backward();
      im::NoGradGuard no_grad;  // an SGD step, as an optimiser would do it
      w1 = Tensor(w1.detach().clone() - w1.grad() * 1e-3).set_requires_grad(true);
      w2 = Tensor(w2.detach().clone() - w2.grad() * 1e-3).set_requires_grad(true);
    }
    if (step == 0) {
      live_after_first = alloc.stats().live_bytes;
      nodes_after_first = im::live_node_count();
    }
  }
  EXPECT_EQ(alloc.stats().live_bytes, live_after_first);
  EXPECT_EQ(im::live_node_count(), nodes_after_first);
  EXPECT_EQ(im::live_node_count(), 0) << "graph nodes outlived their step";
}
