// CUDA index ops (embedding, gather, scatter_add, where, masked_fill, topk) against the
// CPU reference: forward and backward on fresh random inputs, odd sizes, both index
// dtypes, strided operands, and the range-check errors. Selections are compared exactly;
// sums done with atomics (embedding and gather backward, scatter_add) to a tolerance.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/expect_error.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

Tensor gpu(const Tensor& t) {
  return t.to(Device::cuda());
}

// Random integers in [lo, hi) as an index tensor of `dtype`.
Tensor random_index(const Shape& shape, int64_t lo, int64_t hi, DType dtype, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> dist(lo, hi - 1);
  std::vector<int64_t> v(static_cast<size_t>(im::shape_numel(shape)));
  for (auto& x : v) x = dist(rng);
  const Tensor t = Tensor::from_vector<int64_t>(v, shape);
  return dtype == DType::Int64 ? t : t.to(dtype);
}

// Exact equality of two tensors' values (NaN equals NaN), the GPU one copied back.
::testing::AssertionResult same_values(const Tensor& gpu_t, const Tensor& cpu_t) {
  if (gpu_t.shape() != cpu_t.shape())
    return ::testing::AssertionFailure()
           << "shapes " << im::shape_str(gpu_t.shape()) << " and " << im::shape_str(cpu_t.shape());
  const auto a = gpu_t.to_vector<double>();
  const auto b = cpu_t.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = (std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i];
    if (!same)
      return ::testing::AssertionFailure()
             << "element " << i << ": gpu " << a[i] << ", cpu " << b[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

// ---- embedding ------------------------------------------------------------------------------

TEST(CudaIndexing, EmbeddingForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(101);
  std::mt19937_64 rng(101);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (DType it : {DType::Int32, DType::Int64}) {
      for (int64_t width : {1, 7, 33, 257}) {
        for (int64_t padding_idx : {int64_t{-1}, int64_t{3}}) {
          const int64_t vocab = 37;
          const Tensor table = im::randn({vocab, width}, gen, dt);
          // 65 ids over 37 rows: repeated ids (atomic accumulation) and the padding id.
          Tensor ids = random_index({5, 13}, 0, vocab, it, rng);
          const Tensor tc = leaf_on(table, Device::cpu()), tg = leaf_on(table, Device::cuda());
          const Tensor yc = im::embedding(tc, ids, padding_idx);
          const Tensor yg = im::embedding(tg, gpu(ids), padding_idx);
          EXPECT_TRUE(same_values(yg, yc)) << width;
          const Tensor w = im::randn(yc.shape(), gen, dt);
          yc.backward(w);
          yg.backward(gpu(w));
          EXPECT_LT(rel_error(tg.grad(), tc.grad()), float_tolerance(dt))
              << im::dtype_name(dt) << " " << im::dtype_name(it) << " width " << width;
          if (padding_idx >= 0) {
            const auto row = tg.grad().to(Device::cpu()).select(0, padding_idx).to_vector<double>();
            for (double v : row) EXPECT_EQ(v, 0.0);
          }
        }
      }
    }
  }
}

TEST(CudaIndexing, OutOfRangeIndicesOnTheGpuAreTheSameClearErrors) {
  REQUIRE_GPU();
  const Tensor table = gpu(Tensor::zeros({5, 3}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::embedding(table, gpu(Tensor::from_vector<int64_t>({0, 4, 7, 9}, {4})));
      },
      {"embedding", "id 7", "position 2", "5 rows"}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::embedding(table, gpu(Tensor::from_vector<int32_t>({1, -2}, {2})));
      },
      {"id -2", "position 1"}));
  // The lowest bad position is reported even when many threads see bad ids at once.
  std::vector<int64_t> many(100000, 99);
  many[0] = 1;
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] { im::embedding(table, gpu(Tensor::from_vector<int64_t>(many, {100000}))); },
      {"id 99", "position 1 "}));
  // Index and data on different devices.
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] { im::embedding(table, Tensor::from_vector<int64_t>({0}, {1})); }, {"embedding", "ids"}));
  const Tensor x = gpu(Tensor::zeros({3, 4}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::gather(x, 1, gpu(Tensor::from_vector<int64_t>({0, 4}, {1, 2})));
      },
      {"gather", "index 4", "position 1", "dimension 1 of size 4"}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::scatter_add(x, 0, gpu(Tensor::from_vector<int32_t>({3}, {1, 1})),
                        gpu(Tensor::ones({1, 1})));
      },
      {"scatter_add", "index 3", "dimension 0 of size 3"}));
  EXPECT_THROW(im::masked_fill(x, Tensor::zeros({3, 4}, DType::UInt8), 1.0), im::Error);
}

// ---- gather / scatter_add ---------------------------------------------------------------

TEST(CudaIndexing, GatherForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(102);
  std::mt19937_64 rng(102);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (DType it : {DType::Int32, DType::Int64}) {
      for (bool transposed : {false, true}) {
        for (int64_t dim : {0, 1, 2, -1}) {
          // x [6, 9, 5], or a non-contiguous view of that shape on both devices.
          const Tensor store = im::randn(transposed ? Shape{5, 9, 6} : Shape{6, 9, 5}, gen, dt);
          const Tensor x = transposed ? store.permute({2, 1, 0}) : store;
          const Tensor x_gpu = transposed ? gpu(store).permute({2, 1, 0}) : gpu(store);
          const int64_t d = dim < 0 ? dim + 3 : dim;
          Shape ishape = {4, 7, 3};  // smaller than x outside `dim`
          ishape[d] = 11;            // and longer along it (repeated picks)
          const Tensor index = random_index(ishape, 0, x.size(d), it, rng);
          EXPECT_TRUE(same_values(im::gather(x_gpu, dim, gpu(index)), im::gather(x, dim, index)))
              << "dim " << dim << " transposed " << transposed;
          // Backward (a scatter-add of w, with repeated picks) through leaves.
          const Tensor xc = leaf_on(x, Device::cpu()), xg = leaf_on(x, Device::cuda());
          const Tensor yc = im::gather(xc, dim, index), yg = im::gather(xg, dim, gpu(index));
          const Tensor w = im::randn(yc.shape(), gen, dt);
          yc.backward(w);
          yg.backward(gpu(w));
          EXPECT_LT(rel_error(xg.grad(), xc.grad()), float_tolerance(dt))
              << im::dtype_name(dt) << " dim " << dim;
        }
      }
    }
  }
}

TEST(CudaIndexing, GatherReadsAStridedViewOnTheGpu) {
  REQUIRE_GPU();
  im::Generator gen(103);
  std::mt19937_64 rng(103);
  const Tensor x = im::randn({9, 13}, gen, DType::Float64);
  const Tensor index = random_index({13, 5}, 0, 9, DType::Int64, rng);
  // x^T is [13, 9] with strides (1, 13): gathered along dim 1.
  EXPECT_TRUE(same_values(im::gather(gpu(x).transpose(0, 1), 1, gpu(index)),
                          im::gather(x.transpose(0, 1), 1, index)));
}

TEST(CudaIndexing, ScatterAddForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(104);
  std::mt19937_64 rng(104);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (DType it : {DType::Int32, DType::Int64}) {
      for (int64_t dim : {0, 1}) {
        for (bool strided_src : {false, true}) {
          const Tensor base = im::randn({7, 33}, gen, dt);
          // src [9, 35], larger than the index (only its leading block is read); maybe a
          // transposed view on both devices.
          const Tensor store = im::randn(strided_src ? Shape{35, 9} : Shape{9, 35}, gen, dt);
          const Tensor src = strided_src ? store.transpose(0, 1) : store;
          const Tensor src_gpu = strided_src ? gpu(store).transpose(0, 1) : gpu(store);
          const Shape ishape = dim == 0 ? Shape{9, 31} : Shape{6, 34};
          const Tensor index = random_index(ishape, 0, base.size(dim), it, rng);
          EXPECT_LT(rel_error(im::scatter_add(gpu(base), dim, gpu(index), src_gpu),
                              im::scatter_add(base, dim, index, src)),
                    float_tolerance(dt))
              << "dim " << dim << " strided " << strided_src;
          // Backward: base gets w, src the gather of w (zero outside the index's block).
          const Tensor bc = leaf_on(base, Device::cpu()), bg = leaf_on(base, Device::cuda());
          const Tensor sc = leaf_on(src, Device::cpu()), sg = leaf_on(src, Device::cuda());
          const Tensor yc = im::scatter_add(bc, dim, index, sc);
          const Tensor yg = im::scatter_add(bg, dim, gpu(index), sg);
          const Tensor w = im::randn(yc.shape(), gen, dt);
          yc.backward(w);
          yg.backward(gpu(w));
          EXPECT_TRUE(same_values(bg.grad(), bc.grad()));
          EXPECT_TRUE(same_values(sg.grad(), sc.grad()));
        }
      }
    }
  }
}

// ---- where / masked_fill ------------------------------------------------------------------

TEST(CudaIndexing, WhereForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(105);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& cshape : {Shape{7, 9}, Shape{1, 9}, Shape{7, 1}, Shape{}}) {
      const Tensor cond = im::bernoulli_mask(cshape, 0.4, gen);
      const Tensor a_store = im::randn({9, 7}, gen, dt);
      const Tensor a = a_store.transpose(0, 1);  // strided [7, 9]
      const Tensor b = im::randn({7, 9}, gen, dt);
      EXPECT_TRUE(same_values(im::where(gpu(cond), gpu(a_store).transpose(0, 1), gpu(b)),
                              im::where(cond, a, b)))
          << im::shape_str(cshape);
      const Tensor ac = leaf_on(a, Device::cpu()), bc = leaf_on(b, Device::cpu());
      const Tensor ag = leaf_on(a, Device::cuda()), bg = leaf_on(b, Device::cuda());
      const Tensor yc = im::where(cond, ac, bc), yg = im::where(gpu(cond), ag, bg);
      EXPECT_TRUE(same_values(yg, yc));
      const Tensor w = im::randn(yc.shape(), gen, dt);
      yc.backward(w);
      yg.backward(gpu(w));
      EXPECT_TRUE(same_values(ag.grad(), ac.grad()));
      EXPECT_TRUE(same_values(bg.grad(), bc.grad()));
    }
  }
}

TEST(CudaIndexing, MaskedFillForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(106);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Shape& mshape : {Shape{5, 33}, Shape{5, 1}, Shape{33}, Shape{1, 1}}) {
      for (double value : {-kInf, 0.0, 2.5}) {
        const Tensor mask = im::bernoulli_mask(mshape, 0.5, gen);
        const Tensor x_store = im::randn({33, 5}, gen, dt);
        const Tensor x = x_store.transpose(0, 1);  // strided [5, 33]
        EXPECT_TRUE(same_values(im::masked_fill(gpu(x_store).transpose(0, 1), gpu(mask), value),
                                im::masked_fill(x, mask, value)))
            << im::shape_str(mshape) << " " << value;
        const Tensor xc = leaf_on(x, Device::cpu()), xg = leaf_on(x, Device::cuda());
        const Tensor yc = im::masked_fill(xc, mask, value);
        const Tensor yg = im::masked_fill(xg, gpu(mask), value);
        EXPECT_TRUE(same_values(yg, yc));
        const Tensor w = im::randn(yc.shape(), gen, dt);
        yc.backward(w);
        yg.backward(gpu(w));
        EXPECT_TRUE(same_values(xg.grad(), xc.grad()));
      }
    }
    // A strided mask (a transposed view) as well.
    const Tensor m_store = im::bernoulli_mask({33, 5}, 0.5, gen);
    const Tensor x = im::randn({5, 33}, gen, dt);
    EXPECT_TRUE(same_values(im::masked_fill(gpu(x), gpu(m_store).transpose(0, 1), -1.0),
                            im::masked_fill(x, m_store.transpose(0, 1), -1.0)));
  }
}

// ---- topk ---------------------------------------------------------------------------------

TEST(CudaIndexing, TopkMatchesCpuExactlyWithTiesNanAndInfinities) {
  REQUIRE_GPU();
  im::Generator gen(107);
  std::mt19937_64 rng(107);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t cols : {1, 7, 33, 257, 1000}) {
      const int64_t rows = 13;
      // Values from a small set (many ties), then NaN, +inf and -inf sprinkled in.
      std::uniform_int_distribution<int> level(-3, 3), special(0, 19);
      std::vector<double> v(static_cast<size_t>(rows * cols));
      for (auto& e : v) {
        const int s = special(rng);
        e = s == 0   ? std::numeric_limits<double>::quiet_NaN()
            : s == 1 ? kInf
            : s == 2 ? -kInf
                     : 0.5 * level(rng);
      }
      const Tensor x = Tensor::from_vector<double>(v, {rows, cols}).to(dt);
      for (int64_t k : {int64_t{0}, int64_t{1}, (cols + 1) / 2, cols}) {
        const im::TopK c = im::topk(x, k, -1);
        const im::TopK g = im::topk(gpu(x), k, -1);
        EXPECT_TRUE(same_values(g.values, c.values)) << cols << " k " << k;
        EXPECT_EQ(g.indices.to(Device::cpu()).to_vector<int64_t>(), c.indices.to_vector<int64_t>())
            << cols << " k " << k;
      }
      // Along dim 0 (the front-end moves it last), on a distinct-valued tensor.
      const Tensor y = im::randn({cols, 6}, gen, dt);
      const int64_t k = std::min<int64_t>(cols, 4);
      const im::TopK c0 = im::topk(y, k, 0), g0 = im::topk(gpu(y), k, 0);
      EXPECT_TRUE(same_values(g0.values, c0.values));
      EXPECT_EQ(g0.indices.to(Device::cpu()).to_vector<int64_t>(), c0.indices.to_vector<int64_t>());
    }
  }
}

TEST(CudaIndexing, TopkBackwardMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(108);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t dim : {0, 1}) {
      const Tensor x = im::randn({37, 65}, gen, dt);
      const Tensor xc = leaf_on(x, Device::cpu()), xg = leaf_on(x, Device::cuda());
      const im::TopK c = im::topk(xc, 5, dim), g = im::topk(xg, 5, dim);
      const Tensor w = im::randn(c.values.shape(), gen, dt);
      c.values.backward(w);
      g.values.backward(gpu(w));
      EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "dim " << dim;
    }
  }
}
