// concat / stack / split: values, shapes, gradients and errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/ops.h"
#include "tests/expect_error.h"

using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::throws_error_mentioning;

namespace {
Tensor iota(const Shape& shape, double start = 0, DType dtype = DType::Float32) {
  return im::add(Tensor::arange(im::shape_numel(shape), dtype).reshape(shape), start);
}
}  // namespace

TEST(JoinConcat, AlongEachDim) {
  const Tensor a = iota({2, 2}), b = iota({2, 1}, 10);
  const Tensor c1 = im::concat({a, b}, 1);
  EXPECT_EQ(c1.shape(), (Shape{2, 3}));
  EXPECT_EQ(c1.to_vector<float>(), (std::vector<float>{0, 1, 10, 2, 3, 11}));
  const Tensor c0 = im::concat({a, iota({1, 2}, 20), a.transpose(0, 1)}, -2);
  EXPECT_EQ(c0.shape(), (Shape{5, 2}));
  EXPECT_EQ(c0.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 20, 21, 0, 2, 1, 3}));
  // Index tensors join too (no gradient involved).
  const Tensor ids = im::concat(
      {Tensor::from_vector<int64_t>({1, 2}, {2}), Tensor::from_vector<int64_t>({3}, {1})}, 0);
  EXPECT_EQ(ids.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(JoinConcat, GradientIsSlicedBack) {
  Tensor a = Tensor::ones({2, 2}, DType::Float64), b = Tensor::ones({2, 1}, DType::Float64);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  const Tensor w = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  im::sum(im::mul(im::concat({a, b}, 1), w)).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1, 2, 4, 5}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{3, 6}));
}

TEST(JoinConcat, Errors) {
  const Tensor a = Tensor::zeros({2, 3});
  EXPECT_THROW(im::concat({}, 0), im::Error);
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::concat({a, Tensor::zeros({3, 3})}, 1);
      },
      {"concat", "tensor 1", "[3, 3]", "dimension 1"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::concat({a, Tensor::zeros({2, 3}, DType::Float64)}, 0);
      },
      {"concat", "dtype"}));
  EXPECT_THROW(im::concat({a, Tensor::zeros({2, 3, 1})}, 0), im::Error);
  EXPECT_THROW(im::concat({a}, 2), im::Error);
  EXPECT_THROW(im::concat({Tensor::scalar(1), Tensor::scalar(2)}, 0), im::Error);
}

TEST(JoinStack, NewDimAtAnyPosition) {
  const Tensor a = iota({2, 3}), b = iota({2, 3}, 10);
  const Tensor s0 = im::stack({a, b}, 0);
  EXPECT_EQ(s0.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(s0.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}));
  const Tensor s2 = im::stack({a, b}, -1);
  EXPECT_EQ(s2.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(s2.to_vector<float>(), (std::vector<float>{0, 10, 1, 11, 2, 12, 3, 13, 4, 14, 5, 15}));
  EXPECT_EQ(im::stack({Tensor::scalar(1), Tensor::scalar(2)}, 0).to_vector<float>(),
            (std::vector<float>{1, 2}));
}

TEST(JoinStack, Errors) {
  EXPECT_THROW(im::stack({}, 0), im::Error);
  EXPECT_TRUE(throws_error_mentioning(
      [] {
        im::stack({Tensor::zeros({2, 3}), Tensor::zeros({3, 2})}, 0);
      },
      {"stack", "tensor 1", "[3, 2]"}));
  EXPECT_THROW(im::stack({Tensor::zeros({2, 3})}, 3), im::Error);
}

TEST(JoinSplit, PartsAreViewsWithGradients) {
  Tensor x = iota({5, 2}, 0, DType::Float64);
  x.set_requires_grad(true);
  const std::vector<Tensor> parts = im::split(x, {2, 0, 3}, 0);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(parts[1].shape(), (Shape{0, 2}));
  EXPECT_EQ(parts[2].to_vector<double>(), (std::vector<double>{4, 5, 6, 7, 8, 9}));
  im::sum(im::mul(parts[2], 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 0, 0, 3, 3, 3, 3, 3, 3}));
  const std::vector<Tensor> cols = im::split(x.detach(), {1, 1}, -1);
  EXPECT_TRUE(cols[1].shares_storage_with(x));
  EXPECT_EQ(cols[1].to_vector<double>(), (std::vector<double>{1, 3, 5, 7, 9}));
}

TEST(JoinSplit, SizesMustCoverTheDim) {
  const Tensor x = Tensor::zeros({5, 2});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::split(x, {2, 2}, 0);
      },
      {"split", "sum to 4", "size 5"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::split(x, {6, -1}, 0); }, {"split", "-1"}));
  EXPECT_THROW(im::split(x, {2}, 2), im::Error);
}
