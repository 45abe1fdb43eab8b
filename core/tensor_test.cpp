// Views and strides, broadcasting rules, copies and printing.
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "core/ops.h"

using im::DType;
using im::Shape;
using im::Tensor;

namespace {
Tensor iota(const Shape& shape) {
  return Tensor::arange(im::shape_numel(shape), DType::Float32).reshape(shape);
}
}  // namespace

TEST(Tensor, CreationAndMetadata) {
  Tensor t = Tensor::zeros({2, 3, 4}, DType::Float64);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.describe(), "float64[2, 3, 4] on cpu");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data_ptr()) % 64, 0u) << "CPU memory is 64-byte aligned";
  EXPECT_THROW(t.data<float>(), im::Error);
  EXPECT_THROW(t.size(3), im::Error);
}

TEST(Tensor, ReshapeIsAViewWhenContiguous) {
  Tensor t = iota({2, 3, 4});
  Tensor r = t.reshape({6, -1});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_TRUE(r.shares_storage_with(t));
  EXPECT_THROW(t.reshape({5, -1}), im::Error);
  EXPECT_THROW(t.reshape({-1, -1}), im::Error);
}

TEST(Tensor, TransposeIsAStridedViewAndContiguousCopies) {
  Tensor t = iota({2, 3});
  Tensor tr = t.transpose(0, 1);
  EXPECT_EQ(tr.shape(), (Shape{3, 2}));
  EXPECT_EQ(tr.strides(), (Shape{1, 3}));
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_TRUE(tr.shares_storage_with(t));
  EXPECT_EQ(tr.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor c = tr.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.shares_storage_with(t));
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // A transposed tensor cannot be viewed flat, but reshape copies.
  EXPECT_THROW(tr.view({6}), im::Error);
  EXPECT_EQ(tr.reshape({6}).to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(Tensor, PermuteSliceSelect) {
  Tensor t = iota({2, 3, 4});
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_THROW(t.permute({0, 0, 1}), im::Error);

  Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_TRUE(s.shares_storage_with(t));
  EXPECT_EQ(s.storage_offset(), 1);
  EXPECT_EQ(s.to_vector<float>()[0], 1.0f);
  EXPECT_EQ(s.to_vector<float>()[1], 3.0f);
  EXPECT_EQ(t.slice(0, -1, 2).to_vector<float>()[0], 12.0f);  // negative start

  Tensor row = t.select(1, 2);
  EXPECT_EQ(row.shape(), (Shape{2, 4}));
  EXPECT_EQ(row.to_vector<float>()[0], 8.0f);
}

TEST(Tensor, ExpandUsesZeroStrides) {
  Tensor t = iota({3, 1});
  Tensor e = t.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_TRUE(e.shares_storage_with(t));
  const auto v = e.to_vector<float>();
  EXPECT_EQ(v.size(), 24u);
  EXPECT_EQ(v[4], 1.0f);
  EXPECT_EQ(v[12 + 11], 2.0f);
  EXPECT_THROW(iota({3, 2}).expand({3, 4}), im::Error);
}

TEST(Tensor, UnsqueezeSqueezeFlatten) {
  Tensor t = iota({2, 3});
  EXPECT_EQ(t.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_THROW(t.squeeze(0), im::Error);
  EXPECT_EQ(iota({2, 3, 4}).flatten(1).shape(), (Shape{2, 12}));
}

TEST(Broadcasting, Rules) {
  EXPECT_EQ(im::broadcast_shapes({3, 1, 5}, {4, 1}, "t"), (Shape{3, 4, 5}));
  EXPECT_EQ(im::broadcast_shapes({}, {2, 2}, "t"), (Shape{2, 2}));
  EXPECT_EQ(im::broadcast_shapes({1}, {0}, "t"), (Shape{0}));
  EXPECT_THROW(im::broadcast_shapes({3}, {4}, "add"), im::Error);
  try {
    im::broadcast_shapes({3, 2}, {4, 2}, "add");
  } catch (const im::Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: shapes [3, 2] and [4, 2] do not broadcast"),
              std::string::npos);
  }
}

TEST(Broadcasting, ValuesOfBroadcastArithmetic) {
  Tensor a = iota({2, 1, 3});
  Tensor b = Tensor::from_vector<float>({10, 20}, {2, 1});
  Tensor c = im::add(a, b);
  EXPECT_EQ(c.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(c.to_vector<float>(),
            (std::vector<float>{10, 11, 12, 20, 21, 22, 13, 14, 15, 23, 24, 25}));
  // Strided operands: a transposed matrix plus a row vector.
  Tensor m = iota({2, 3}).transpose(0, 1);
  Tensor r = Tensor::from_vector<float>({100, 200}, {2});
  EXPECT_EQ(im::add(m, r).to_vector<float>(), (std::vector<float>{100, 203, 101, 204, 102, 205}));
  EXPECT_THROW(im::add(iota({2}), Tensor::zeros({2}, DType::Float64)), im::Error);
}

TEST(Tensor, CopyAndFill) {
  Tensor dst = Tensor::zeros({2, 3}, DType::Float64);
  dst.copy_(iota({3, 2}).transpose(0, 1));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{0, 2, 4, 1, 3, 5}));
  dst.fill_(7);
  EXPECT_EQ(dst.to_vector<double>()[5], 7.0);
  EXPECT_THROW(dst.copy_(iota({3, 3})), im::Error);
  Tensor window = dst.slice(1, 0, 3, 2);
  window.copy_(Tensor::zeros({2, 2}, DType::Float32));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{0, 7, 0, 0, 7, 0}));
}

TEST(Tensor, PrintingShowsHeaderAndValues) {
  std::ostringstream os;
  os << iota({2, 3});
  EXPECT_NE(os.str().find("Tensor(float32[2, 3] on cpu)"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find("[[0, 1, 2],"), std::string::npos) << os.str();
  std::ostringstream big;
  big << iota({100});
  EXPECT_NE(big.str().find("..."), std::string::npos);
  std::ostringstream undefined;
  undefined << Tensor();
  EXPECT_EQ(undefined.str(), "Tensor(undefined)");
}

TEST(Tensor, UndefinedTensorUseIsAnError) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_THROW(t.shape(), im::Error);
}
