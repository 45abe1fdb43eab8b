// Selective scan: a hand-computed example, the closed (unrolled) form of the recurrence,
// reverse = scan of the time-reversed inputs, L = 1, float32, and argument errors.
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

Tensor random(const Shape& shape, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator g(seed);
  return im::rand_uniform(shape, g, lo, hi, DType::Float64);
}

Tensor vec(std::vector<double> v, const Shape& shape) {
  return Tensor::from_vector(v, shape);
}

// A copy of x [B, L, ...] with the time dim (1) reversed.
Tensor flip_time(const Tensor& x) {
  const int64_t B = x.size(0), L = x.size(1), inner = x.numel() / std::max<int64_t>(1, B * L);
  const auto v = x.to_vector<double>();
  std::vector<double> r(v.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t i = 0; i < inner; ++i)
        r[(b * L + t) * inner + i] = v[(b * L + (L - 1 - t)) * inner + i];
  return Tensor::from_vector(r, x.shape());
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << " element " << i;
}

struct Inputs {
  Tensor u, delta, A, Bm, Cm, D, inject;
};

Inputs random_inputs(int64_t B, int64_t L, int64_t E, int64_t N, uint64_t seed) {
  return {random({B, L, E}, seed),
          random({B, L, E}, seed + 1, 0.05, 0.5),
          random({E, N}, seed + 2, -1.5, -0.2),
          random({B, L, N}, seed + 3),
          random({B, L, N}, seed + 4),
          random({E}, seed + 5),
          random({B, L, E}, seed + 6)};
}

// The recurrence unrolled (an independent formulation):
//   y_t[e] = D[e] u_t[e] + sum_n Cm_t[n] sum_{s<=t} exp(A[e,n] sum_{r=s+1..t} delta_r[e])
//                                              * delta_s[e] Bm_s[n] x_s[e]
std::vector<double> unrolled_forward_scan(const Inputs& in, bool with_inject) {
  const int64_t B = in.u.size(0), L = in.u.size(1), E = in.u.size(2), N = in.A.size(1);
  const auto u = in.u.to_vector<double>(), dl = in.delta.to_vector<double>();
  const auto A = in.A.to_vector<double>(), Bm = in.Bm.to_vector<double>();
  const auto Cm = in.Cm.to_vector<double>(), D = in.D.to_vector<double>();
  const auto inj = with_inject ? in.inject.to_vector<double>() : std::vector<double>(u.size(), 0);
  std::vector<double> y(u.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const int64_t te = (b * L + t) * E + e;
        double acc = D[e] * u[te];
        for (int64_t n = 0; n < N; ++n)
          for (int64_t s = 0; s <= t; ++s) {
            double decay_sum = 0;
            for (int64_t r = s + 1; r <= t; ++r) decay_sum += dl[(b * L + r) * E + e];
            const int64_t se = (b * L + s) * E + e;
            acc += Cm[(b * L + t) * N + n] * std::exp(A[e * N + n] * decay_sum) * dl[se] *
                   Bm[(b * L + s) * N + n] * (u[se] + inj[se]);
          }
        y[te] = acc;
      }
  return y;
}

}  // namespace

TEST(SelectiveScan, HandComputedExample) {
  // L = 2, E = 1, N = 1: u = (1, 2), delta = (0.5, 0.25), A = -1, Bm = (2, 3),
  // Cm = (1.5, -1), D = 0.5.
  const Tensor u = vec({1, 2}, {1, 2, 1}), delta = vec({0.5, 0.25}, {1, 2, 1});
  const Tensor A = vec({-1}, {1, 1}), Bm = vec({2, 3}, {1, 2, 1}), Cm = vec({1.5, -1}, {1, 2, 1});
  const Tensor D = vec({0.5}, {1});
  const double e25 = std::exp(-0.25), e50 = std::exp(-0.5);

  // Forward: h0 = 0.5*2*1 = 1, y0 = 1.5*1 + 0.5*1 = 2;
  //          h1 = e^-0.25 * 1 + 0.25*3*2, y1 = -h1 + 0.5*2.
  expect_near_all(im::selective_scan(u, delta, A, Bm, Cm, D, Tensor()).to_vector<double>(),
                  {2.0, -(e25 + 1.5) + 1.0}, 1e-14, "forward");
  // Reverse: h1 = 0.25*3*2 = 1.5, y1 = -1.5 + 1; h0 = e^-0.5 * 1.5 + 0.5*2*1, y0 = 1.5 h0 + 0.5.
  expect_near_all(im::selective_scan(u, delta, A, Bm, Cm, D, Tensor(), true).to_vector<double>(),
                  {1.5 * (1.5 * e50 + 1.0) + 0.5, -0.5}, 1e-14, "reverse");
  // Injection (0.5, -1) drives the state with x = (1.5, 1) but the skip still uses u:
  //   h0 = 0.5*2*1.5 = 1.5, y0 = 2.25 + 0.5; h1 = 1.5 e^-0.25 + 0.75, y1 = -h1 + 1.
  const Tensor inject = vec({0.5, -1}, {1, 2, 1});
  expect_near_all(im::selective_scan(u, delta, A, Bm, Cm, D, inject).to_vector<double>(),
                  {2.75, -(1.5 * e25 + 0.75) + 1.0}, 1e-14, "inject");

  // Backward by hand for loss = y0 + y1 (forward, no inject):
  //   dA = dy1/dA = Cm1 * delta1 * e^(delta1 A) * h0 = -0.25 e^-0.25
  //   dD = u0 + u1 = 3; dCm = (h0, h1); dBm0 = (Cm0 + Cm1 e^-0.25) * delta0 * u0
  Tensor Ag = A.clone(), Dg = D.clone(), Cg = Cm.clone(), Bg = Bm.clone();
  for (Tensor* t : {&Ag, &Dg, &Cg, &Bg}) t->set_requires_grad(true);
  im::sum(im::selective_scan(u, delta, Ag, Bg, Cg, Dg, Tensor())).backward();
  EXPECT_NEAR(Ag.grad().item(), -0.25 * e25, 1e-14);
  EXPECT_NEAR(Dg.grad().item(), 3.0, 1e-14);
  expect_near_all(Cg.grad().to_vector<double>(), {1.0, e25 + 1.5}, 1e-14, "dCm");
  expect_near_all(Bg.grad().to_vector<double>(), {(1.5 - e25) * 0.5, -1.0 * 0.25 * 2}, 1e-14,
                  "dBm");
}

TEST(SelectiveScan, MatchesUnrolledRecurrence) {
  const Inputs in = random_inputs(2, 7, 3, 5, 10);
  expect_near_all(
      im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject).to_vector<double>(),
      unrolled_forward_scan(in, true), 1e-12, "with inject");
  expect_near_all(
      im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, Tensor()).to_vector<double>(),
      unrolled_forward_scan(in, false), 1e-12, "without inject");
}

TEST(SelectiveScan, ReverseEqualsForwardScanOfFlippedInputs) {
  for (bool with_inject : {true, false}) {
    const Inputs in = random_inputs(2, 7, 3, 5, 20);
    const Tensor inj = with_inject ? in.inject : Tensor();
    const Tensor inj_f = with_inject ? flip_time(in.inject) : Tensor();
    const Tensor rev = im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, inj, true);
    const Tensor fwd_of_flipped =
        im::selective_scan(flip_time(in.u), flip_time(in.delta), in.A, flip_time(in.Bm),
                           flip_time(in.Cm), in.D, inj_f, false);
    expect_near_all(rev.to_vector<double>(), flip_time(fwd_of_flipped).to_vector<double>(), 1e-13,
                    with_inject ? "values, inject" : "values");
  }

  // Gradients too: the reverse scan's gradients are the flipped gradients of the forward
  // scan of flipped inputs (upstream weights flipped alike).
  const Inputs in = random_inputs(2, 7, 3, 5, 30);
  const Tensor w = random({2, 7, 3}, 37);
  auto grads = [](const std::vector<Tensor>& leaves_in, const Tensor& weight, bool reverse) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : leaves_in) {
      Tensor l = t.clone();
      l.set_requires_grad(true);
      leaves.push_back(l);
    }
    const Tensor y = im::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4],
                                        leaves[5], leaves[6], reverse);
    im::sum(im::mul(y, weight)).backward();
    std::vector<Tensor> g;
    for (const Tensor& l : leaves) g.push_back(l.grad());
    return g;
  };
  const auto g_rev = grads({in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject}, w, true);
  const auto g_fwd = grads({flip_time(in.u), flip_time(in.delta), in.A, flip_time(in.Bm),
                            flip_time(in.Cm), in.D, flip_time(in.inject)},
                           flip_time(w), false);
  const char* names[] = {"u", "delta", "A", "Bm", "Cm", "D", "inject"};
  for (int i = 0; i < 7; ++i) {
    const bool time_indexed = i != 2 && i != 5;
    const Tensor want = time_indexed ? flip_time(g_fwd[i]) : g_fwd[i];
    expect_near_all(g_rev[i].to_vector<double>(), want.to_vector<double>(), 1e-12, names[i]);
  }
}

TEST(SelectiveScan, SingleStep) {
  // L = 1: h = delta Bm x, y = <Cm, h> + D u, in either direction.
  const Inputs in = random_inputs(2, 1, 3, 4, 40);
  const auto u = in.u.to_vector<double>(), dl = in.delta.to_vector<double>();
  const auto Bm = in.Bm.to_vector<double>(), Cm = in.Cm.to_vector<double>();
  const auto D = in.D.to_vector<double>(), inj = in.inject.to_vector<double>();
  std::vector<double> want(6);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t e = 0; e < 3; ++e) {
      double cb = 0;
      for (int64_t n = 0; n < 4; ++n) cb += Cm[b * 4 + n] * Bm[b * 4 + n];
      const int64_t i = b * 3 + e;
      want[i] = cb * dl[i] * (u[i] + inj[i]) + D[e] * u[i];
    }
  for (bool reverse : {false, true})
    expect_near_all(im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject, reverse)
                        .to_vector<double>(),
                    want, 1e-14, reverse ? "reverse" : "forward");
}

TEST(SelectiveScan, ZeroDeltaPassesStateThrough) {
  // MODEL.md: pad tokens get delta = 0, leaving the state unchanged; only the skip remains.
  Inputs in = random_inputs(1, 5, 3, 4, 50);
  std::vector<double> dl = in.delta.to_vector<double>();
  for (int64_t e = 0; e < 3; ++e) dl[2 * 3 + e] = 0.0;  // t = 2 is a pad
  in.delta = Tensor::from_vector(dl, {1, 5, 3});
  const auto y =
      im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, Tensor()).to_vector<double>();
  expect_near_all(y, unrolled_forward_scan(in, false), 1e-12);
}

TEST(SelectiveScan, Float32MatchesFloat64) {
  const Inputs in = random_inputs(2, 33, 8, 16, 60);
  const auto ref =
      im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject).to_vector<double>();
  auto f = [](const Tensor& t) { return t.to(DType::Float32); };
  const Tensor y32 =
      im::selective_scan(f(in.u), f(in.delta), f(in.A), f(in.Bm), f(in.Cm), f(in.D), f(in.inject));
  EXPECT_EQ(y32.dtype(), DType::Float32);
  expect_near_all(y32.to_vector<double>(), ref, 1e-4);

  // Float32 backward agrees with float64 too.
  std::vector<Tensor> l64, l32;
  for (const Tensor& t : {in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject}) {
    l64.push_back(t.clone().set_requires_grad(true));
    l32.push_back(f(t).set_requires_grad(true));
  }
  im::sum(im::selective_scan(l64[0], l64[1], l64[2], l64[3], l64[4], l64[5], l64[6])).backward();
  im::sum(im::selective_scan(l32[0], l32[1], l32[2], l32[3], l32[4], l32[5], l32[6])).backward();
  for (size_t i = 0; i < l64.size(); ++i) {
    const auto g64 = l64[i].grad().to_vector<double>(), g32 = l32[i].grad().to_vector<double>();
    ASSERT_EQ(g64.size(), g32.size());
    for (size_t k = 0; k < g64.size(); ++k)
      EXPECT_NEAR(g32[k], g64[k], 1e-4 * (1.0 + std::abs(g64[k]))) << "input " << i << " " << k;
  }
}

TEST(SelectiveScan, RejectsBadShapesNamingTheArgument) {
  const Inputs in = random_inputs(2, 3, 4, 5, 70);
  auto expect_error = [](auto&& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const im::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("selective_scan"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  expect_error(
      [&] {
        im::selective_scan(random({3, 4}, 1), in.delta, in.A, in.Bm, in.Cm, in.D, Tensor());
      },
      "u must be");
  expect_error(
      [&] {
        im::selective_scan(in.u, random({2, 3, 5}, 1), in.A, in.Bm, in.Cm, in.D, Tensor());
      },
      "delta must be [B, L, E] = [2, 3, 4]");
  expect_error(
      [&] {
        im::selective_scan(in.u, in.delta, random({5, 5}, 1), in.Bm, in.Cm, in.D, Tensor());
      },
      "A must be [E, N]");
  expect_error(
      [&] {
        im::selective_scan(in.u, in.delta, in.A, random({2, 3, 4}, 1), in.Cm, in.D, Tensor());
      },
      "Bm must be [B, L, N] = [2, 3, 5]");
  expect_error(
      [&] {
        im::selective_scan(in.u, in.delta, in.A, in.Bm, random({2, 4, 5}, 1), in.D, Tensor());
      },
      "Cm must be");
  expect_error(
      [&] { im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, random({5}, 1), Tensor()); },
      "D must be [E] = [4]");
  expect_error(
      [&] {
        im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, random({2, 3, 5}, 1));
      },
      "inject must be");
  expect_error([&] { im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, Tensor(), Tensor()); },
               "D must be defined");
  expect_error(
      [&] {
        im::selective_scan(in.u, in.delta, in.A.to(DType::Float32), in.Bm, in.Cm, in.D, Tensor());
      },
      "dtype");
}

TEST(SelectiveScan, BackwardLeavesNoTape) {
  const int64_t before = im::live_node_count();
  {
    const Inputs in = random_inputs(1, 4, 3, 2, 80);
    Tensor u = in.u.clone().set_requires_grad(true);
    const Tensor y = im::selective_scan(u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject, true);
    im::sum(y).backward();
    EXPECT_EQ(u.grad().shape(), u.shape());
  }
  EXPECT_EQ(im::live_node_count(), before);
}

// Δ computed inside the scan equals building Δ first: softplus(delta + bias) then the
// plain scan, forward and every gradient, in float64 (the same arithmetic in another order).
TEST(SelectiveScan, DeltaBiasAndSoftplusInsideEqualBuildingDeltaFirst) {
  const Inputs in = random_inputs(2, 9, 5, 4, 70);
  const Tensor bias = random({5}, 72, -2.0, 1.0);
  // Relative: float64 sums in another order differ in the last bits.
  auto expect_close = [](const Tensor& got, const Tensor& want, double tol) {
    const auto a = got.to_vector<double>(), b = want.to_vector<double>();
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(a[i], b[i], tol * (1.0 + std::abs(b[i]))) << "element " << i;
  };
  for (bool softplus : {false, true}) {
    // Without the softplus, raw + bias stays positive as a step size must.
    const Tensor raw =
        softplus ? random({2, 9, 5}, 71, -3.0, 3.0) : random({2, 9, 5}, 71, 2.1, 3.0);
    for (bool reverse : {false, true}) {
      std::vector<Tensor> a, b;
      for (const Tensor& t : {in.u, raw, in.A, in.Bm, in.Cm, in.D, in.inject, bias}) {
        a.push_back(t.clone().set_requires_grad(true));
        b.push_back(t.clone().set_requires_grad(true));
      }
      const Tensor fused = im::selective_scan(
          a[0], a[1], a[2], a[3], a[4], a[5],
          {.inject = a[6], .delta_bias = a[7], .delta_softplus = softplus, .reverse = reverse});
      Tensor delta = im::add(b[1], b[7]);
      if (softplus) delta = im::softplus(delta);
      const Tensor plain = im::selective_scan(b[0], delta, b[2], b[3], b[4], b[5], b[6], reverse);
      expect_close(fused, plain, 1e-13);
      const Tensor w = random(fused.shape(), 73);
      im::sum(im::mul(fused, w)).backward();
      im::sum(im::mul(plain, w)).backward();
      for (size_t i = 0; i < a.size(); ++i) expect_close(a[i].grad(), b[i].grad(), 1e-12);
    }
  }
}

TEST(SelectiveScan, RejectsADeltaBiasOfTheWrongShape) {
  const Inputs in = random_inputs(1, 3, 4, 2, 80);
  EXPECT_THROW(im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D,
                                  {.delta_bias = random({3}, 81), .delta_softplus = true}),
               im::Error);
}
