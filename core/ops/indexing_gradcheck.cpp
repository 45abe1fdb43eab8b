// Gradient checks of the index-driven ops: embedding (repeated ids, padding id),
// gather / scatter_add along several dims with repeated indices, where and masked_fill
// with broadcast masks, and topk on inputs without near-ties.
#include "tests/gradcheck.h"

using im::DType;
using im::Tensor;
using im::testing::gradcheck;
using im::testing::gradcheck_multi;
using im::testing::random_constant;
using im::testing::random_input;

namespace {

// Index values in [0, limit) with repeats, deterministic.
template <typename I>
Tensor index_tensor(const im::Shape& shape, int64_t limit, int64_t salt) {
  std::vector<I> v(im::shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<I>((i * 7 + salt) % limit);
  return Tensor::from_vector<I>(v, shape);
}

// Distinct values 0.1 apart in a scrambled order: top-k is differentiable there and
// finite differences cannot reorder them.
Tensor distinct_input(const im::Shape& shape) {
  const int64_t n = im::shape_numel(shape);
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>((i * 11) % n) * 0.1 - 1.0;
  Tensor t = Tensor::from_vector<double>(v, shape);
  t.set_requires_grad(true);
  return t;
}

}  // namespace

GRADCHECK_CASE(embedding, "embedding") {
  Tensor table = random_input({7, 5}, 81);
  const Tensor ids64 = Tensor::from_vector<int64_t>({1, 3, 1, 6, 3, 0}, {2, 3});
  // No padding, and a padding id that does not occur: the plain derivative.
  for (int64_t padding_idx : {-1, 2}) {
    EXPECT_TRUE(gradcheck([&](const auto& in) { return im::embedding(in[0], ids64, padding_idx); },
                          {table}))
        << "padding_idx " << padding_idx;
  }
  const Tensor ids32 = Tensor::from_vector<int32_t>({4, 4, 2, 6, 0, 4, 5}, {7});
  EXPECT_TRUE(gradcheck([&](const auto& in) { return im::embedding(in[0], ids32); }, {table}))
      << "int32 ids";
  // Non-contiguous ids and table.
  Tensor table_t = random_input({5, 7}, 82);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::embedding(in[0].transpose(0, 1), ids64.transpose(0, 1)); },
      {table_t}))
      << "transposed table and ids";
}

// A padding row gets no gradient by design, which is the true derivative once the pad
// positions are masked out of the result, as the model does (MODEL.md §1).
GRADCHECK_CASE(embedding_padding, "embedding", "masked_fill") {
  Tensor table = random_input({7, 5}, 83);
  const std::vector<int64_t> ids = {1, 3, 1, 6, 3, 0, 3};
  for (int64_t padding_idx : {3, 1, 0}) {
    std::vector<uint8_t> is_pad;
    for (int64_t id : ids) is_pad.push_back(id == padding_idx);
    const Tensor id_t = Tensor::from_vector<int64_t>(ids, {7});
    const Tensor pad_mask = Tensor::from_vector<uint8_t>(is_pad, {7, 1});
    EXPECT_TRUE(gradcheck(
        [&](const auto& in) {
          return im::masked_fill(im::embedding(in[0], id_t, padding_idx), pad_mask, 0.0);
        },
        {table}))
        << "padding_idx " << padding_idx;
  }
}

GRADCHECK_CASE(gather, "gather") {
  Tensor x = random_input({3, 5, 4}, 91);
  struct Case {
    int64_t dim;
    im::Shape index_shape;
  };
  for (const Case& c : std::vector<Case>{
           {0, {5, 5, 4}}, {1, {3, 7, 4}}, {2, {2, 3, 3}}, {-1, {3, 5, 9}}, {1, {1, 1, 1}}}) {
    const int64_t limit = x.size(c.dim);
    const Tensor index = index_tensor<int64_t>(c.index_shape, limit, c.dim + 2);
    EXPECT_TRUE(gradcheck([&](const auto& in) { return im::gather(in[0], c.dim, index); }, {x}))
        << "dim " << c.dim << " index " << im::shape_str(c.index_shape);
  }
  // Non-contiguous x and int32 index.
  Tensor xt = random_input({4, 5, 3}, 92);
  const Tensor index32 = index_tensor<int32_t>({3, 6, 4}, 5, 1);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::gather(in[0].transpose(0, 2), 1, index32); }, {xt}));
}

GRADCHECK_CASE(scatter_add, "scatter_add") {
  struct Case {
    int64_t dim;
    im::Shape base, index, src;
  };
  uint64_t seed = 101;
  for (const Case& c : std::vector<Case>{{0, {3, 5}, {4, 5}, {4, 5}},
                                         {1, {3, 5}, {2, 7}, {3, 8}},
                                         {-1, {2, 3, 4}, {2, 3, 9}, {2, 3, 9}},
                                         {1, {2, 3, 4}, {1, 5, 2}, {2, 5, 3}}}) {
    Tensor base = random_input(c.base, seed++), src = random_input(c.src, seed++);
    const int64_t limit = c.base[c.dim < 0 ? c.dim + c.base.size() : c.dim];
    const Tensor index = index_tensor<int64_t>(c.index, limit, seed);
    EXPECT_TRUE(gradcheck(
        [&](const auto& in) { return im::scatter_add(in[0], c.dim, index, in[1]); }, {base, src}))
        << "dim " << c.dim << " src " << im::shape_str(c.src);
  }
  // Gradient for src only, src non-contiguous, int32 index.
  const Tensor base = random_constant({4, 3}, 111);
  Tensor src = random_input({3, 4}, 112);
  const Tensor index32 = index_tensor<int32_t>({4, 3}, 4, 3);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::scatter_add(in[0], 0, index32, in[1].transpose(0, 1)); },
      {base, src}));
}

GRADCHECK_CASE(where, "where") {
  const std::vector<std::tuple<im::Shape, im::Shape, im::Shape>> shapes = {
      {{3, 5}, {3, 5}, {3, 5}}, {{3, 1}, {3, 5}, {5}}, {{5}, {1}, {3, 5}}, {{2, 1, 5}, {3, 1}, {}}};
  uint64_t seed = 121;
  for (const auto& [sc, sa, sb] : shapes) {
    std::vector<uint8_t> bits(im::shape_numel(sc));
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = (i * 5 + 1) % 3 == 0;
    const Tensor cond = Tensor::from_vector<uint8_t>(bits, sc);
    Tensor a = random_input(sa, seed++), b = random_input(sb, seed++);
    EXPECT_TRUE(gradcheck([&](const auto& in) { return im::where(cond, in[0], in[1]); }, {a, b}))
        << im::shape_str(sc) << " " << im::shape_str(sa) << " " << im::shape_str(sb);
  }
  // Non-contiguous operand.
  const Tensor cond = Tensor::from_vector<uint8_t>({1, 0, 0, 1, 1}, {5});
  Tensor a = random_input({5, 3}, 131), b = random_input({3, 5}, 132);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::where(cond, in[0].transpose(0, 1), in[1]); }, {a, b}));
}

GRADCHECK_CASE(masked_fill, "masked_fill") {
  Tensor x = random_input({3, 5}, 141);
  for (const im::Shape& ms : std::vector<im::Shape>{{3, 5}, {5}, {3, 1}, {}}) {
    std::vector<uint8_t> bits(im::shape_numel(ms));
    for (size_t i = 0; i < bits.size(); ++i) bits[i] = (i * 3 + 1) % 4 < 2;
    const Tensor mask = Tensor::from_vector<uint8_t>(bits, ms);
    EXPECT_TRUE(gradcheck([&](const auto& in) { return im::masked_fill(in[0], mask, 2.5); }, {x}))
        << "mask " << im::shape_str(ms);
  }
  const Tensor mask = Tensor::from_vector<uint8_t>({0, 1, 1}, {3});
  Tensor xt = random_input({3, 4}, 142);
  EXPECT_TRUE(gradcheck(
      [&](const auto& in) { return im::masked_fill(in[0].transpose(0, 1), mask, -1.0); }, {xt}));
}

GRADCHECK_CASE(topk, "topk") {
  struct Case {
    im::Shape shape;
    int64_t k, dim;
  };
  for (const Case& c : std::vector<Case>{{{17}, 5, 0},
                                         {{3, 7}, 3, -1},
                                         {{3, 7}, 7, 1},
                                         {{3, 7}, 2, 0},
                                         {{2, 3, 5}, 1, 1},
                                         {{2, 3, 5}, 0, 2}}) {
    Tensor x = distinct_input(c.shape);
    EXPECT_TRUE(gradcheck_multi(
        [&](const auto& in) {
          im::TopK r = im::topk(in[0], c.k, c.dim);
          return std::vector<Tensor>{r.values, r.indices};
        },
        {x}))
        << im::shape_str(c.shape) << " k " << c.k << " dim " << c.dim;
  }
  Tensor x = distinct_input({5, 3});
  EXPECT_TRUE(
      gradcheck([](const auto& in) { return im::topk(in[0].transpose(0, 1), 2, 1).values; }, {x}))
      << "non-contiguous input";
}
