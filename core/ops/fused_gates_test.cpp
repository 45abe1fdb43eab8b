// The mixer's fused gates against the unfused ops they replace: gated_fusion against
// mul(add(mul(mean(ys), alpha_h), mul(g, alpha_g)), silu(z)) and sigmoid_gate against
// mul(sigmoid(add(pre, bias)), g), outputs and every gradient, bit for bit in float64 and
// within 1e-6 in float32; every stream configuration, odd sizes, inputs read in place
// through a row stride or copied, empty rows, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/expect_error.h"

using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::throws_error_mentioning;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// got against want element by element: equal when tol is 0, else within tol * (1 + |want|).
void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_TRUE(want.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool ok = tol == 0 ? g[i] == w[i] : std::abs(g[i] - w[i]) <= tol * (1 + std::abs(w[i]));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(bad, 0) << what << ": first difference at " << first << ": "
                    << (first >= 0 ? g[first] : 0) << " vs " << (first >= 0 ? w[first] : 0);
}

// Runs `fused` and `composite` on separate leaves holding `values`, then backward from the
// same random upstream gradient; the outputs and every leaf's gradient must agree.
void expect_same(const Fn& fused, const Fn& composite, const std::vector<Tensor>& values,
                 double tol, const std::string& what) {
  auto leaves = [&] {
    std::vector<Tensor> v;
    for (const Tensor& x : values) {
      Tensor t = x.clone();
      t.set_requires_grad(true);
      v.push_back(t);
    }
    return v;
  };
  const std::vector<Tensor> a = leaves(), b = leaves();
  const Tensor ya = fused(a), yb = composite(b);
  expect_close(ya.detach(), yb.detach(), tol, what + " forward");
  im::Generator gen(99);
  const Tensor w = im::randn(ya.shape(), gen, ya.dtype());
  ya.backward(w);
  yb.backward(w);
  for (size_t i = 0; i < values.size(); ++i)
    expect_close(a[i].grad(), b[i].grad(), tol, what + " grad of input " + std::to_string(i));
}

Tensor composite_fusion(const std::vector<Tensor>& ys, const Tensor& g, const Tensor& z,
                        const Tensor& ah, const Tensor& ag) {
  Tensor fused;
  if (!ys.empty()) {
    const Tensor m = ys.size() == 2 ? im::mul(im::add(ys[0], ys[1]), 0.5) : ys[0];
    fused = ah.defined() ? im::mul(m, ah) : m;
  }
  if (g.defined()) {
    const Tensor t = ag.defined() ? im::mul(g, ag) : g;
    fused = fused.defined() ? im::add(fused, t) : t;
  }
  return im::mul(fused, im::silu(z));
}

Tensor composite_gate(const Tensor& pre, const Tensor& bias, const Tensor& g) {
  return im::mul(im::sigmoid(bias.defined() ? im::add(pre, bias) : pre), g);
}

// Which streams and parameters a gated_fusion call gets.
struct Streams {
  int ys;
  bool g, ah, ag;
  std::string name() const {
    return std::to_string(ys) + " ys" + (g ? " + g" : "") + (ah ? " alpha_h" : "") +
           (ag ? " alpha_g" : "");
  }
};

const std::vector<Streams>& stream_configs() {
  static const std::vector<Streams> c = {
      {2, true, true, true},   {1, true, true, true},  {2, false, true, false},
      {1, false, true, false}, {0, true, false, true}, {1, false, false, false},
      {2, true, false, false}, {1, true, false, true},
  };
  return c;
}

// Inputs in the order y0, y1, g, z, alpha_h, alpha_g, absent ones left out.
std::vector<Tensor> fusion_values(const Streams& c, const Shape& shape, DType dt, uint64_t seed) {
  im::Generator gen(seed);
  std::vector<Tensor> v;
  for (int i = 0; i < c.ys; ++i) v.push_back(im::randn(shape, gen, dt));
  if (c.g) v.push_back(im::randn(shape, gen, dt));
  v.push_back(im::rand_uniform(shape, gen, -4, 4, dt));
  if (c.ah) v.push_back(im::rand_uniform({shape.back()}, gen, 0.5, 1.5, dt));
  if (c.ag) v.push_back(im::randn({shape.back()}, gen, dt));
  return v;
}

Tensor call_fusion(const Streams& c, const std::vector<Tensor>& in, bool fused,
                   const std::function<Tensor(const Tensor&)>& z_of = nullptr) {
  size_t k = 0;
  std::vector<Tensor> ys;
  for (int i = 0; i < c.ys; ++i) ys.push_back(in[k++]);
  const Tensor g = c.g ? in[k++] : Tensor();
  const Tensor z = z_of ? z_of(in[k++]) : in[k++];
  const Tensor ah = c.ah ? in[k++] : Tensor();
  const Tensor ag = c.ag ? in[k++] : Tensor();
  return fused ? im::gated_fusion(ys, g, z, ah, ag) : composite_fusion(ys, g, z, ah, ag);
}

void check_fusion(DType dt, double tol) {
  const std::vector<Shape> shapes = {{3, 5, 7}, {2, 19, 12}, {7}, {4, 1}, {1, 33}};
  uint64_t seed = 10;
  for (const Shape& shape : shapes) {
    for (const Streams& c : stream_configs()) {
      expect_same([c](const auto& in) { return call_fusion(c, in, true); },
                  [c](const auto& in) { return call_fusion(c, in, false); },
                  fusion_values(c, shape, dt, seed++), tol,
                  im::shape_str(shape) + " " + c.name() + " " + im::dtype_name(dt));
    }
  }
}

void check_gate(DType dt, double tol) {
  const std::vector<Shape> shapes = {{3, 5, 7}, {2, 19, 12}, {7}, {4, 1}, {1, 33}};
  uint64_t seed = 40;
  for (const Shape& shape : shapes) {
    im::Generator gen(seed++);
    const Tensor pre = im::rand_uniform(shape, gen, -5, 5, dt), g = im::randn(shape, gen, dt);
    const Tensor b = im::randn({shape.back()}, gen, dt);
    const std::string what = im::shape_str(shape) + " " + im::dtype_name(dt);
    expect_same([](const auto& in) { return im::sigmoid_gate(in[0], in[1], in[2]); },
                [](const auto& in) { return composite_gate(in[0], in[1], in[2]); }, {pre, b, g},
                tol, what);
    expect_same([](const auto& in) { return im::sigmoid_gate(in[0], Tensor(), in[1]); },
                [](const auto& in) { return composite_gate(in[0], Tensor(), in[1]); }, {pre, g},
                tol, what + " no bias");
  }
}

// The second half of the last dim: rows 2E apart, as z from split(uz, {E, E}, -1).
Tensor second_half(const Tensor& t) {
  const int64_t w = t.size(-1);
  return t.slice(t.dim() - 1, w / 2, w);
}

}  // namespace

TEST(GatedFusion, EqualsCompositeExactlyInFloat64) {
  check_fusion(DType::Float64, 0);
}

TEST(GatedFusion, MatchesCompositeInFloat32) {
  check_fusion(DType::Float32, 1e-6);
}

TEST(GatedFusion, ReadsStridedViewsInPlaceAndCopiesOthers) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    const double tol = dt == DType::Float64 ? 0 : 1e-6;
    im::Generator gen(70);
    // z and u from one [B, L, 2E] tensor (u = the first half, as the one y), g transposed.
    const Tensor uz = im::rand_uniform({2, 5, 14}, gen, -3, 3, dt);
    const Tensor y = im::randn({2, 5, 7}, gen, dt), gt = im::randn({2, 7, 5}, gen, dt);
    const Tensor ah = im::randn({7}, gen, dt), ag = im::randn({7}, gen, dt);
    auto run = [](bool fused) {
      return [fused](const std::vector<Tensor>& in) {
        const std::vector<Tensor> ys = {in[1], in[0].slice(2, 0, 7)};
        const Tensor g = in[2].transpose(1, 2), z = second_half(in[0]);
        return fused ? im::gated_fusion(ys, g, z, in[3], in[4])
                     : composite_fusion(ys, g, z, in[3], in[4]);
      };
    };
    expect_same(run(true), run(false), {uz, y, gt, ah, ag}, tol,
                std::string("strided ") + im::dtype_name(dt));
    // Rows evenly spaced through two dims (every other row: in place) and not (copied).
    const Tensor y6 = im::randn({3, 6, 5}, gen, dt), z6 = im::randn({3, 6, 5}, gen, dt);
    auto run6 = [](bool fused) {
      return [fused](const std::vector<Tensor>& in) {
        const std::vector<Tensor> ys = {in[0].slice(1, 0, 6, 2)};
        const Tensor z = in[1].slice(1, 3, 6);
        return fused ? im::gated_fusion(ys, Tensor(), z, Tensor(), Tensor())
                     : composite_fusion(ys, Tensor(), z, Tensor(), Tensor());
      };
    };
    expect_same(run6(true), run6(false), {y6, z6}, tol,
                std::string("sliced middle dim ") + im::dtype_name(dt));
  }
}

TEST(GatedFusion, SameTensorAsBothYs) {
  im::Generator gen(71);
  const Tensor y = im::randn({4, 9}, gen, DType::Float64);
  const Tensor z = im::randn({4, 9}, gen, DType::Float64);
  const Tensor ah = im::randn({9}, gen, DType::Float64);
  expect_same(
      [](const auto& in) {
        return im::gated_fusion({in[0], in[0]}, {}, in[1], in[2], {});
      },
      [](const auto& in) {
        return composite_fusion({in[0], in[0]}, {}, in[1], in[2], {});
      },
      {y, z, ah}, 0, "y twice");
}

TEST(GatedFusion, NoRowsGivesZeroParameterGradients) {
  Tensor y = Tensor::zeros({0, 6}, DType::Float64), z = Tensor::zeros({0, 6}, DType::Float64);
  Tensor ah = Tensor::ones({6}, DType::Float64);
  y.set_requires_grad(true);
  ah.set_requires_grad(true);
  const Tensor out = im::gated_fusion({y}, Tensor(), z, ah, Tensor());
  EXPECT_EQ(out.shape(), (Shape{0, 6}));
  out.backward(Tensor::zeros({0, 6}, DType::Float64));
  for (double v : ah.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
}

TEST(GatedFusion, OnlyTheNeededGradients) {
  // z alone requires grad: the output still records, and the other inputs get none.
  im::Generator gen(72);
  const Tensor y = im::randn({3, 4}, gen, DType::Float64);
  Tensor z = im::randn({3, 4}, gen, DType::Float64);
  z.set_requires_grad(true);
  const Tensor out = im::gated_fusion({y}, Tensor(), z, Tensor(), Tensor());
  ASSERT_TRUE(out.requires_grad());
  im::sum(out).backward();
  EXPECT_FALSE(y.grad().defined());
  ASSERT_TRUE(z.grad().defined());
  {
    im::NoGradGuard no_grad;
    EXPECT_FALSE(im::gated_fusion({y}, Tensor(), z, Tensor(), Tensor()).requires_grad());
  }
}

TEST(GatedFusion, ArgumentErrors) {
  const Tensor x = Tensor::zeros({2, 3, 5}, DType::Float64);
  const Tensor p = Tensor::ones({5}, DType::Float64);
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({}, Tensor(), x, {}, {}); },
                                      {"gated_fusion", "needs ys or g"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::gated_fusion({x, x, x}, x, x, p, p);
      },
      {"gated_fusion", "at most 2 ys"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({x}, x, Tensor(), p, p); },
                                      {"gated_fusion", "z is undefined"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::gated_fusion({Tensor::zeros({2, 3, 4}, DType::Float64)}, x, x, {}, p);
      },
      {"gated_fusion", "shape of z"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::gated_fusion({x}, x, x, Tensor::ones({4}, DType::Float64), p); },
      {"gated_fusion", "alpha_h must be [5]"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({}, x, x, p, p); },
                                      {"gated_fusion", "alpha_h given but ys is empty"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({x}, Tensor(), x, p, p); },
                                      {"gated_fusion", "alpha_g given but g is undefined"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({x}, x.to(DType::Float32), x, p, p); },
                                      {"gated_fusion", "dtype"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({x}, x, x, p, p.to(DType::Float32)); },
                                      {"gated_fusion", "dtype"}));
  const Tensor b = x.to(DType::BFloat16), pb = p.to(DType::BFloat16);
  EXPECT_TRUE(throws_error_mentioning([&] { im::gated_fusion({b}, b, b, pb, pb); },
                                      {"gated_fusion", "bfloat16", "GPU"}));
}

TEST(SigmoidGate, EqualsCompositeExactlyInFloat64) {
  check_gate(DType::Float64, 0);
}

TEST(SigmoidGate, MatchesCompositeInFloat32) {
  check_gate(DType::Float32, 1e-6);
}

TEST(SigmoidGate, ReadsStridedViewsInPlaceAndCopiesOthers) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    im::Generator gen(80);
    const Tensor pre2 = im::rand_uniform({3, 4, 18}, gen, -4, 4, dt);
    const Tensor gt = im::randn({9, 4, 3}, gen, dt), b = im::randn({9}, gen, dt);
    auto run = [](bool fused) {
      return [fused](const std::vector<Tensor>& in) {
        const Tensor pre = second_half(in[0]), g = in[1].transpose(0, 2);
        return fused ? im::sigmoid_gate(pre, in[2], g) : composite_gate(pre, in[2], g);
      };
    };
    expect_same(run(true), run(false), {pre2, gt, b}, dt == DType::Float64 ? 0 : 1e-6,
                std::string("strided ") + im::dtype_name(dt));
  }
}

TEST(SigmoidGate, ArgumentErrors) {
  const Tensor x = Tensor::zeros({2, 5}, DType::Float64);
  EXPECT_TRUE(
      throws_error_mentioning([&] { im::sigmoid_gate(x, Tensor::zeros({4}, DType::Float64), x); },
                              {"sigmoid_gate", "bias must be [5]"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::sigmoid_gate(x, Tensor(), Tensor::zeros({5, 2}, DType::Float64));
      },
      {"sigmoid_gate", "shape of pre"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::sigmoid_gate(x, Tensor(), Tensor()); },
                                      {"sigmoid_gate", "must be defined"}));
  const Tensor b = x.to(DType::BFloat16);
  EXPECT_TRUE(throws_error_mentioning([&] { im::sigmoid_gate(b, Tensor(), b); },
                                      {"sigmoid_gate", "bfloat16"}));
}
