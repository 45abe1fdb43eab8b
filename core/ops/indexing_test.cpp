// Forward values, gradients and error messages of embedding, gather, scatter_add,
// where, masked_fill and topk.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "tests/expect_error.h"

using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::throws_error_mentioning;

namespace {

Tensor iota(const Shape& shape, DType dtype = DType::Float32) {
  return Tensor::arange(im::shape_numel(shape), dtype).reshape(shape);
}

}  // namespace

// ---- embedding --------------------------------------------------------------------------

TEST(Embedding, LooksUpRows) {
  const Tensor table = iota({4, 3});
  const Tensor ids = Tensor::from_vector<int32_t>({2, 0, 3, 3}, {2, 2});
  const Tensor out = im::embedding(table, ids);
  EXPECT_EQ(out.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{6, 7, 8, 0, 1, 2, 9, 10, 11, 9, 10, 11}));
}

TEST(Embedding, RepeatedIdsAccumulateAndPaddingRowsGetZeroGrad) {
  Tensor table = iota({4, 2}, DType::Float64);
  table.set_requires_grad(true);
  const Tensor ids = Tensor::from_vector<int64_t>({1, 2, 1, 0, 2}, {5});
  const Tensor out = im::embedding(table, ids, /*padding_idx=*/2);
  // The padding row is still looked up in forward (its values are the table's).
  EXPECT_EQ(out.to_vector<double>()[2], 4.0);
  const Tensor w = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2});
  im::sum(im::mul(out, w)).backward();
  EXPECT_EQ(table.grad().to_vector<double>(),
            (std::vector<double>{7, 8, 1 + 5, 2 + 6, 0, 0, 0, 0}));
}

TEST(Embedding, OutOfRangeIdsAreErrorsNamingTheIdAndVocab) {
  const Tensor table = Tensor::zeros({5, 3});
  EXPECT_THROW(im::embedding(table, Tensor::from_vector<int64_t>({0, 7}, {2})), im::Error);
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::embedding(table, Tensor::from_vector<int64_t>({0, 4, 7}, {3}));
      },
      {"embedding", "id 7", "position 2", "5 rows"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::embedding(table, Tensor::from_vector<int32_t>({-2}, {1})); }, {"id -2"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::embedding(table, Tensor::from_vector<int64_t>({0}, {1}), 5); }, {"padding_idx 5"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] { im::embedding(table, Tensor::from_vector<float>({0}, {1})); }, {"ids", "float32"}));
  EXPECT_THROW(im::embedding(Tensor::zeros({5}), Tensor::from_vector<int64_t>({0}, {1})),
               im::Error);
}

// ---- gather / scatter_add ---------------------------------------------------------------

TEST(IndexGather, TorchSemantics) {
  const Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  const Tensor index = Tensor::from_vector<int64_t>({0, 0, 1, 0}, {2, 2});
  EXPECT_EQ(im::gather(x, 1, index).to_vector<double>(), (std::vector<double>{1, 1, 4, 3}));
  EXPECT_EQ(im::gather(x, 0, index).to_vector<double>(), (std::vector<double>{1, 2, 3, 2}));
  // An index smaller than x outside `dim`, and a non-contiguous x.
  const Tensor big = iota({3, 4});
  const Tensor idx = Tensor::from_vector<int32_t>({3, 0, 1, 2, 2, 2}, {2, 3});
  EXPECT_EQ(im::gather(big, 1, idx).to_vector<float>(), (std::vector<float>{3, 0, 1, 6, 6, 6}));
  EXPECT_EQ(im::gather(big.transpose(0, 1), 0, Tensor::from_vector<int64_t>({3, 1}, {1, 2}))
                .to_vector<float>(),
            (std::vector<float>{3, 5}));
}

TEST(IndexGather, Errors) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_THROW(im::gather(x, 1, Tensor::from_vector<int64_t>({0, 3}, {1, 2})), im::Error);
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::gather(x, 1, Tensor::from_vector<int64_t>({0, 3}, {1, 2}));
      },
      {"gather", "index 3", "dimension 1", "size 3"}));
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::gather(x, 0, Tensor::from_vector<int64_t>({-1}, {1, 1}));
      },
      {"index -1"}));
  EXPECT_THROW(im::gather(x, 1, Tensor::from_vector<int64_t>({0, 1}, {2})), im::Error);
  EXPECT_THROW(im::gather(x, 1, Tensor::zeros({3, 1}, DType::Int64)), im::Error);
  EXPECT_THROW(im::gather(x, 2, Tensor::zeros({2, 3}, DType::Int64)), im::Error);
}

TEST(IndexScatterAdd, AccumulatesRepeatedIndicesOutOfPlace) {
  const Tensor base = Tensor::full({3, 5}, 10.0, DType::Float64);
  const Tensor index = Tensor::from_vector<int64_t>({0, 1, 2, 0, 0, 0, 1, 2, 2, 0}, {2, 5});
  const Tensor src = iota({2, 5}, DType::Float64);
  const Tensor out = im::scatter_add(base, 0, index, src);
  EXPECT_EQ(out.to_vector<double>(),
            (std::vector<double>{10 + 0 + 5, 10, 10, 10 + 3, 10 + 4 + 9, 10, 10 + 1 + 6, 10, 10, 10,
                                 10, 10, 10 + 2 + 7, 10 + 8, 10}));
  for (double v : base.to_vector<double>()) EXPECT_EQ(v, 10.0) << "base must be unchanged";
  // Along dim 1 with an index smaller than src: the rest of src is not read.
  const Tensor idx = Tensor::from_vector<int32_t>({4, 4}, {1, 2});
  EXPECT_EQ(im::scatter_add(Tensor::zeros({1, 5}, DType::Float64), 1, idx, src).to_vector<double>(),
            (std::vector<double>{0, 0, 0, 0, 0 + 1}));
}

TEST(IndexScatterAdd, Errors) {
  const Tensor base = Tensor::zeros({2, 3});
  const Tensor src = Tensor::ones({2, 3});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::scatter_add(base, 0, Tensor::from_vector<int64_t>({1, 2}, {1, 2}), src);
      },
      {"scatter_add", "index 2", "size 2"}));
  EXPECT_THROW(im::scatter_add(base, 0, Tensor::zeros({2, 4}, DType::Int64), src), im::Error);
  EXPECT_THROW(im::scatter_add(base, 0, Tensor::zeros({2, 3}, DType::Int64),
                               Tensor::ones({2, 3}, DType::Float64)),
               im::Error);
}

// ---- where / masked_fill ------------------------------------------------------------------

TEST(IndexWhere, BroadcastsAllThree) {
  const Tensor cond = Tensor::from_vector<uint8_t>({1, 0}, {2, 1});
  const Tensor a = iota({2, 3});
  const Tensor b = Tensor::full({}, -1.0);
  EXPECT_EQ(im::where(cond, a, b).to_vector<float>(), (std::vector<float>{0, 1, 2, -1, -1, -1}));
  const Tensor row = Tensor::from_vector<uint8_t>({0, 1, 0}, {3});
  EXPECT_EQ(im::where(row, a, b).shape(), (Shape{2, 3}));
  EXPECT_EQ(im::where(row, a, b).to_vector<float>(), (std::vector<float>{-1, 1, -1, -1, 4, -1}));
}

TEST(IndexWhere, GradientGoesToTheChosenSide) {
  const Tensor cond = Tensor::from_vector<uint8_t>({1, 0, 1}, {3});
  Tensor a = Tensor::ones({2, 3}, DType::Float64), b = Tensor::ones({1}, DType::Float64);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  im::sum(im::where(cond, a, b)).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1, 0, 1, 1, 0, 1}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{2}));
}

TEST(IndexWhere, Errors) {
  const Tensor a = Tensor::zeros({2, 3});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::where(Tensor::zeros({2, 3}), a, a);
      },
      {"where", "cond", "uint8"}));
  EXPECT_THROW(im::where(Tensor::zeros({4}, DType::UInt8), a, a), im::Error);
  EXPECT_THROW(im::where(Tensor::zeros({3}, DType::UInt8), a, Tensor::zeros({3}, DType::Float64)),
               im::Error);
}

TEST(IndexMaskedFill, FillsWhereSetWithBroadcastMask) {
  const Tensor x = iota({2, 3});
  const Tensor mask = Tensor::from_vector<uint8_t>({0, 2, 1}, {3});
  EXPECT_EQ(im::masked_fill(x, mask, 7.5).to_vector<float>(),
            (std::vector<float>{0, 7.5, 7.5, 3, 7.5, 7.5}));
  // -inf fill then softmax: the masked entries get probability zero.
  const float ninf = -std::numeric_limits<float>::infinity();
  const std::vector<float> y = im::masked_fill(x, mask, ninf).to_vector<float>();
  EXPECT_EQ(y[1], ninf);
  EXPECT_EQ(im::softmax(im::masked_fill(x, mask, ninf), 1).to_vector<float>(),
            (std::vector<float>{1, 0, 0, 1, 0, 0}));
}

TEST(IndexMaskedFill, FilledPositionsGetZeroGradient) {
  Tensor x = Tensor::ones({2, 2}, DType::Float64);
  x.set_requires_grad(true);
  const Tensor mask = Tensor::from_vector<uint8_t>({1, 0}, {2, 1});
  im::sum(im::mul(im::masked_fill(x, mask, 3.0), 2.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0, 2, 2}));
}

TEST(IndexMaskedFill, Errors) {
  const Tensor x = Tensor::zeros({2, 3});
  EXPECT_TRUE(throws_error_mentioning(
      [&] {
        im::masked_fill(x, Tensor::zeros({4, 2, 3}, DType::UInt8), 0.0);
      },
      {"masked_fill", "mask", "[2, 3]"}));
  EXPECT_THROW(im::masked_fill(x, Tensor::zeros({2}, DType::UInt8), 0.0), im::Error);
  EXPECT_THROW(im::masked_fill(x, Tensor::zeros({3}, DType::Int64), 0.0), im::Error);
}

// ---- topk -----------------------------------------------------------------------------------

TEST(TopK, SortedDescendingWithInt64Indices) {
  const Tensor x = Tensor::from_vector<float>({3, 1, 4, 1, 5, 9, 2, 6}, {8});
  const im::TopK r = im::topk(x, 3);
  EXPECT_EQ(r.values.to_vector<float>(), (std::vector<float>{9, 6, 5}));
  EXPECT_EQ(r.indices.dtype(), DType::Int64);
  EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{5, 7, 4}));
  EXPECT_FALSE(r.indices.requires_grad());
}

TEST(TopK, TiesKeepTheLowerIndexFirst) {
  const Tensor x = Tensor::from_vector<double>({2, 5, 5, 1, 5, 2}, {6});
  const im::TopK r = im::topk(x, 6, 0);
  EXPECT_EQ(r.values.to_vector<double>(), (std::vector<double>{5, 5, 5, 2, 2, 1}));
  EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 4, 0, 5, 3}));
  EXPECT_EQ(im::topk(x, 2, 0).indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  const Tensor flat = Tensor::zeros({40});
  const std::vector<int64_t> idx = im::topk(flat, 40).indices.to_vector<int64_t>();
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(idx[i], i);
}

TEST(TopK, AlongAnyDim) {
  // [[1, 8, 3], [7, 2, 9]]
  const Tensor x = Tensor::from_vector<float>({1, 8, 3, 7, 2, 9}, {2, 3});
  const im::TopK cols = im::topk(x, 1, 0);
  EXPECT_EQ(cols.values.shape(), (Shape{1, 3}));
  EXPECT_EQ(cols.values.to_vector<float>(), (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(cols.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 1}));
  const im::TopK rows = im::topk(x, 2, -1);
  EXPECT_EQ(rows.values.shape(), (Shape{2, 2}));
  EXPECT_EQ(rows.values.to_vector<float>(), (std::vector<float>{8, 3, 9, 7}));
  EXPECT_EQ(rows.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 2, 0}));
  const im::TopK none = im::topk(x, 0, 1);
  EXPECT_EQ(none.values.shape(), (Shape{2, 0}));
  EXPECT_EQ(none.indices.shape(), (Shape{2, 0}));
}

TEST(TopK, NaNRanksFirst) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = Tensor::from_vector<float>({1, nan, 3}, {3});
  EXPECT_EQ(im::topk(x, 2).indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

TEST(TopK, GradientGoesToThePicks) {
  Tensor x = Tensor::from_vector<double>({0.5, 3, -1, 2}, {4});
  x.set_requires_grad(true);
  const im::TopK r = im::topk(x, 2);
  im::sum(im::mul(r.values, Tensor::from_vector<double>({10, 20}, {2}))).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 10, 0, 20}));
}

TEST(TopK, KOutOfRangeIsAnErrorNamingK) {
  const Tensor x = Tensor::zeros({2, 8});
  EXPECT_THROW(im::topk(x, 9), im::Error);
  EXPECT_TRUE(throws_error_mentioning([&] { im::topk(x, 9); }, {"topk", "k = 9", "[0, 8]"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::topk(x, -1); }, {"k = -1"}));
  EXPECT_TRUE(throws_error_mentioning([&] { im::topk(x, 3, 0); }, {"k = 3", "[0, 2]"}));
  EXPECT_THROW(im::topk(x, 1, 2), im::Error);
}

// Every op here saves tensors for backward only through detach(): an output captured
// un-detached would form a cycle (output -> node -> closure -> output) that keeps the
// graph alive when it is dropped without running backward.
TEST(IndexTape, NoNodesLeakWithOrWithoutBackward) {
  const int64_t before = im::live_node_count();
  for (bool run_backward : {true, false}) {
    Tensor x = Tensor::ones({3, 4}, DType::Float64);
    x.set_requires_grad(true);
    const Tensor ids = Tensor::from_vector<int64_t>({0, 2}, {2});
    const Tensor mask = Tensor::from_vector<uint8_t>({1, 0, 0, 1}, {4});
    const Tensor idx = Tensor::from_vector<int64_t>({1, 0, 2}, {3, 1});
    Tensor y = im::sum(im::embedding(x, ids, 1));
    y = im::add(y, im::sum(im::gather(x, 1, idx)));
    y = im::add(y, im::sum(im::scatter_add(x, 1, idx, x)));
    y = im::add(y, im::sum(im::where(mask, x, x)));
    y = im::add(y, im::sum(im::masked_fill(x, mask, 2.0)));
    y = im::add(y, im::sum(im::topk(x, 2, 1).values));
    y = im::add(y, im::sum(im::topk(x, 2, 0).values));
    for (int64_t dim : {0, 1}) {
      y = im::add(y, im::sum(im::softmax(x, dim)));
      y = im::add(y, im::sum(im::log_softmax(x, dim)));
      y = im::add(y, im::sum(im::cumsum(x, dim)));
    }
    y = im::add(y, im::sum(im::layer_norm(x, Tensor(), Tensor())));
    y = im::add(y, im::sum(im::concat(im::split(x, {1, 2}, 0), 0)));
    y = im::add(y, im::sum(im::stack({x, x}, 1)));
    EXPECT_GT(im::live_node_count(), before);
    if (run_backward) y.backward();
  }
  EXPECT_EQ(im::live_node_count(), before);
}
