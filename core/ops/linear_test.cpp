// linear on the CPU: forward and gradients against matmul + add (the composition it
// replaces), strided operands, empty dimensions, and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/expect_error.h"

using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::throws_error_mentioning;

namespace {

// The composition linear replaces.
Tensor reference(const Tensor& x, const Tensor& w, const Tensor& b) {
  const Tensor y = im::matmul(x, w.transpose(0, 1));
  return b.defined() ? im::add(y, b) : y;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double d = 0;
  for (size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  return d;
}

Tensor leaf(const Tensor& t) {
  Tensor c = t.detach().clone();
  c.set_requires_grad(true);
  return c;
}

using View = std::function<Tensor(const Tensor&)>;
Tensor same(const Tensor& t) {
  return t;
}

// Forward and all three gradients of linear and of the reference, with the same upstream;
// the operands are views (x_view(x), w_view(w), b_view(b)) of leaves holding x, w, b.
void expect_matches_reference(const Tensor& x, const Tensor& w, const Tensor& b, double tol,
                              const std::string& what, const View& x_view = same,
                              const View& w_view = same, const View& b_view = same) {
  const Tensor x1 = leaf(x), w1 = leaf(w), b1 = b.defined() ? leaf(b) : Tensor();
  const Tensor x2 = leaf(x), w2 = leaf(w), b2 = b.defined() ? leaf(b) : Tensor();
  const Tensor y1 = im::linear(x_view(x1), w_view(w1), b.defined() ? b_view(b1) : Tensor());
  const Tensor y2 = reference(x_view(x2), w_view(w2), b.defined() ? b_view(b2) : Tensor());
  ASSERT_EQ(y1.shape(), y2.shape()) << what;
  EXPECT_EQ(y1.dtype(), y2.dtype()) << what;
  EXPECT_LT(max_abs_diff(y1, y2), tol) << what << " forward";
  im::Generator gen(77);
  const Tensor up = im::randn(y1.shape(), gen, y1.dtype());
  y1.backward(up);
  y2.backward(up);
  EXPECT_LT(max_abs_diff(x1.grad(), x2.grad()), tol) << what << " dx";
  EXPECT_LT(max_abs_diff(w1.grad(), w2.grad()), tol) << what << " dW";
  if (b.defined()) {
    EXPECT_LT(max_abs_diff(b1.grad(), b2.grad()), tol) << what << " db";
  }
}

}  // namespace

TEST(Linear, KnownValues) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor w = Tensor::from_vector<double>({1, 0, -1, 2, 1, 0}, {2, 3});
  const Tensor b = Tensor::from_vector<double>({10, 20}, {2});
  EXPECT_EQ(im::linear(x, w, b).to_vector<double>(), (std::vector<double>{8, 24, 8, 33}));
  EXPECT_EQ(im::linear(x, w, Tensor()).to_vector<double>(), (std::vector<double>{-2, 4, -2, 13}));
}

TEST(Linear, MatchesMatmulPlusBias) {
  im::Generator gen(11);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-4 : 1e-12;
    for (auto [lead, in, out] :
         std::vector<std::tuple<Shape, int64_t, int64_t>>{{{1}, 1, 1},
                                                          {{7}, 5, 3},
                                                          {{197}, 384, 1},
                                                          {{2, 7}, 1, 1536},
                                                          {{2, 197}, 17, 33},
                                                          {{2, 3, 4}, 6, 5}}) {
      Shape xs = lead;
      xs.push_back(in);
      const Tensor x = im::randn(xs, gen, dt), w = im::randn({out, in}, gen, dt);
      const Tensor b = im::randn({out}, gen, dt);
      const std::string what = im::dtype_name(dt) + std::string(" x ") + im::shape_str(xs) +
                               " out " + std::to_string(out);
      expect_matches_reference(x, w, b, tol, what + " with bias");
      expect_matches_reference(x, w, Tensor(), tol, what + " without bias");
    }
  }
}

TEST(Linear, StridedOperandsMatchReference) {
  im::Generator gen(12);
  const Tensor big = im::randn({3, 5, 9}, gen, DType::Float64);
  const Tensor w = im::randn({4, 3}, gen, DType::Float64), b = im::randn({4}, gen, DType::Float64);
  // Evenly spaced rows wider than the row (read in place), uneven rows (copied), a
  // transposed x (copied).
  expect_matches_reference(big, w, b, 1e-12, "column slice",
                           [](const Tensor& t) { return t.slice(2, 2, 5); });
  expect_matches_reference(big, w, b, 1e-12, "uneven rows",
                           [](const Tensor& t) { return t.slice(1, 1, 4).slice(2, 0, 3); });
  expect_matches_reference(big, w, b, 1e-12, "transposed x",
                           [](const Tensor& t) { return t.transpose(1, 2).slice(2, 0, 3); });
  // A column-major weight (the transpose of an [in, out] tensor), a weight with a row
  // stride wider than its rows, and a strided bias.
  const View first3 = [](const Tensor& t) { return t.slice(2, 0, 3); };
  const Tensor wt = im::randn({3, 4}, gen, DType::Float64);
  expect_matches_reference(big, wt, b, 1e-12, "column-major W", first3,
                           [](const Tensor& t) { return t.transpose(0, 1); });
  const Tensor wide = im::randn({4, 7}, gen, DType::Float64);
  expect_matches_reference(big, wide, b, 1e-12, "sliced W", first3,
                           [](const Tensor& t) { return t.slice(1, 2, 5); });
  const Tensor b2 = im::randn({8}, gen, DType::Float64);
  expect_matches_reference(big, w, b2, 1e-12, "strided bias", first3, same,
                           [](const Tensor& t) { return t.slice(0, 0, 8, 2); });
}

TEST(Linear, OneDimensionalXIsOneRow) {
  im::Generator gen(13);
  const Tensor x = im::randn({5}, gen, DType::Float64), w = im::randn({3, 5}, gen, DType::Float64);
  const Tensor b = im::randn({3}, gen, DType::Float64);
  const Tensor y = im::linear(x, w, b);
  EXPECT_EQ(y.shape(), (Shape{3}));
  EXPECT_LT(max_abs_diff(y, im::linear(x.reshape({1, 5}), w, b).reshape({3})), 1e-15);
}

TEST(Linear, EmptyDimensions) {
  // in = 0: y is the bias in every row; dW is empty, db still the sum of g's rows.
  Tensor x = Tensor::zeros({3, 0}, DType::Float64).set_requires_grad(true);
  Tensor w = Tensor::zeros({2, 0}, DType::Float64).set_requires_grad(true);
  Tensor b = Tensor::from_vector<double>({1, -2}, {2}).set_requires_grad(true);
  const Tensor y = im::linear(x, w, b);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{1, -2, 1, -2, 1, -2}));
  im::sum(y).backward();
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{3, 3}));
  EXPECT_EQ(w.grad().shape(), (Shape{2, 0}));
  EXPECT_EQ(x.grad().shape(), (Shape{3, 0}));
  EXPECT_EQ(im::linear(x.detach(), w.detach(), Tensor()).to_vector<double>(),
            std::vector<double>(6, 0.0));

  // No rows: y is empty, dW and db are zero.
  Tensor x0 = Tensor::zeros({0, 3}, DType::Float64).set_requires_grad(true);
  Tensor w0 = Tensor::ones({2, 3}, DType::Float64).set_requires_grad(true);
  Tensor b0 = Tensor::ones({2}, DType::Float64).set_requires_grad(true);
  const Tensor y0 = im::linear(x0, w0, b0);
  EXPECT_EQ(y0.shape(), (Shape{0, 2}));
  y0.backward(Tensor::zeros({0, 2}, DType::Float64));
  EXPECT_EQ(w0.grad().to_vector<double>(), std::vector<double>(6, 0.0));
  EXPECT_EQ(b0.grad().to_vector<double>(), std::vector<double>(2, 0.0));

  // out = 0: y is [rows, 0] and dx is zero.
  Tensor x1 = Tensor::ones({2, 3}, DType::Float64).set_requires_grad(true);
  Tensor w1 = Tensor::zeros({0, 3}, DType::Float64).set_requires_grad(true);
  const Tensor y1 = im::linear(x1, w1, Tensor::zeros({0}, DType::Float64));
  EXPECT_EQ(y1.shape(), (Shape{2, 0}));
  y1.backward(Tensor::zeros({2, 0}, DType::Float64));
  EXPECT_EQ(x1.grad().to_vector<double>(), std::vector<double>(6, 0.0));
}

TEST(Linear, Errors) {
  const Tensor x = Tensor::zeros({2, 3}), w = Tensor::zeros({4, 3}), b = Tensor::zeros({4});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::linear(x, Tensor::zeros({4, 5}), b);
      },
      {"linear", "in = 5"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::linear(x, Tensor::zeros({3}), b); },
                                      {"linear", "weight must be [out, in]"}));
  EXPECT_TRUE(
      throws_error_mentioning([&] { im::linear(x, w, Tensor::zeros({5})); }, {"bias must be"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::linear(x, w.to(DType::Float64), b); },
                                      {"linear", "dtype mismatch"}));
  EXPECT_TRUE(
      throws_error_mentioning([&] { im::linear(x, w, b.to(DType::Float64)); }, {"linear", "bias"}));
  // bfloat16 computes on the GPU only, the mixed bfloat16/float32-bias form included.
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::linear(x.to(DType::BFloat16), w.to(DType::BFloat16), b); }, {"linear", "GPU"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::linear(x.to(DType::BFloat16), w.to(DType::BFloat16), Tensor()); },
      {"linear", "GPU"}));
}
