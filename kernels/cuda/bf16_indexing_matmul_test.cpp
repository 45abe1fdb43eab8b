// bfloat16 on the GPU for the index ops (embedding, gather, scatter_add, where,
// masked_fill, topk), matmul and the copy-based ops (concat, stack, split, flip,
// group_sum), each against the float32 CPU op run on the same bf16-rounded inputs, and
// the concept filter's mask kernels against their float32 instantiation. Selections and
// copies must match exactly (bf16 widens to float exactly); sums (GEMMs, scatter-adds,
// gradients summed over uses) within kBf16Tolerance. bf16 tensors on the CPU are a clear
// error (that test runs without a GPU too).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/bfloat16.h"
#include "kernels/cuda/concept_masks.h"
#include "tests/expect_error.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::bf16_rounded;
using im::testing::kBf16Tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

// `t` as bfloat16 on the GPU.
Tensor gpu_bf16(const Tensor& t) {
  return t.to(DType::BFloat16).to(Device::cuda());
}

Tensor on_device_of(const Tensor& t, const Tensor& like) {
  return t.to(like.device());
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

// kExact: copies and selections, which bf16 inputs make bit-equal to the float32 CPU op.
// kClose: results that sum, rounded to bf16 once (relative L2 within kBf16Tolerance).
enum class Match { kExact, kClose };

// A bf16 GPU result against the float32 CPU reference.
void expect_match(const Tensor& gpu_t, const Tensor& cpu_t, Match match, const std::string& what) {
  ASSERT_TRUE(gpu_t.device().is_cuda()) << what;
  ASSERT_EQ(gpu_t.dtype(), DType::BFloat16) << what;
  ASSERT_EQ(gpu_t.shape(), cpu_t.shape()) << what;
  const Tensor widened = gpu_t.detach().to(DType::Float32);
  if (match == Match::kExact)
    EXPECT_TRUE(same_values(widened, cpu_t.detach())) << what;
  else
    EXPECT_LT(rel_error(widened, cpu_t.detach()), kBf16Tolerance) << what;
}

using MultiOp = std::function<Tensor(const std::vector<Tensor>&)>;

// The multi-input form of expect_op_matches_cpu_bf16: `op` runs on float32 CPU leaves
// holding `values` rounded to bf16 and on bf16 GPU leaves; the outputs are compared, the
// same bf16-rounded upstream gradient (from `w_seed`) is backpropagated through both, and
// every non-empty input's gradient is compared. Returns the GPU leaves.
std::vector<Tensor> expect_ops_match(const MultiOp& op, const std::vector<Tensor>& values,
                                     const std::string& what, uint64_t w_seed, Match forward,
                                     Match backward) {
  std::vector<Tensor> cpu_in, gpu_in;
  for (const Tensor& v : values) {
    const Tensor r = bf16_rounded(v);
    cpu_in.push_back(leaf_on(r, Device::cpu()));
    gpu_in.push_back(leaf_on(r.to(DType::BFloat16), Device::cuda()));
  }
  const Tensor yc = op(cpu_in), yg = op(gpu_in);
  expect_match(yg, yc, forward, what + " forward");
  if (yc.numel() == 0) return gpu_in;
  im::Generator wgen(w_seed);
  const Tensor w = bf16_rounded(im::randn(yc.shape(), wgen));
  yc.backward(w);
  yg.backward(gpu_bf16(w));
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].numel() == 0) continue;
    const std::string input = what + " gradient of input " + std::to_string(i);
    EXPECT_TRUE(cpu_in[i].grad().defined()) << input;
    EXPECT_TRUE(gpu_in[i].grad().defined()) << input;
    if (cpu_in[i].grad().defined() && gpu_in[i].grad().defined())
      expect_match(gpu_in[i].grad(), cpu_in[i].grad(), backward, input);
  }
  return gpu_in;
}

}  // namespace

// ---- bf16 on the CPU ----------------------------------------------------------------------

// No GPU needed: the CPU kernels are float32/float64 only, and say so.
TEST(Bf16CpuErrors, IndexOpsAndMatmulRejectCpuBfloat16) {
  const Tensor x = Tensor::zeros({3, 4}, DType::BFloat16);
  const Tensor idx = Tensor::from_vector<int64_t>({0, 1, 2, 0}, {1, 4});
  const Tensor mask = Tensor::zeros({3, 4}, DType::UInt8);
  auto expect_gpu_only = [](const char* op, auto&& fn) {
    EXPECT_TRUE(im::testing::throws_error_mentioning(fn, {op, "bfloat16", "GPU only"})) << op;
  };
  expect_gpu_only("matmul", [&] { im::matmul(x, x.transpose(0, 1)); });
  expect_gpu_only("embedding", [&] { im::embedding(x, idx); });
  expect_gpu_only("gather", [&] { im::gather(x, 0, idx); });
  expect_gpu_only("scatter_add", [&] { im::scatter_add(x, 0, idx, x); });
  expect_gpu_only("where", [&] { im::where(mask, x, x); });
  expect_gpu_only("masked_fill", [&] { im::masked_fill(x, mask, 1.0); });
  expect_gpu_only("topk", [&] { im::topk(x, 2); });
}

// ---- matmul -------------------------------------------------------------------------------

namespace {

struct MatmulCase {
  Shape a, b;
};

// Every lowering of the front-end (one GEMM, folded batch rows with a shared weight,
// strided-batched, a broadcast operand, the per-batch loop), odd sizes, and long inner
// dimensions (1000 products summed in fp32).
const MatmulCase kMatmulCases[] = {
    {{1, 1}, {1, 1}},          {{33, 17}, {17, 65}},      {{7, 1}, {1, 9}},
    {{2, 197, 33}, {33, 129}}, {{3, 5, 4, 7}, {7, 3}},    {{4, 65, 17}, {4, 17, 31}},
    {{9, 9}, {5, 9, 31}},      {{3, 1, 4, 5}, {2, 5, 2}}, {{2, 3, 4, 5}, {2, 3, 5, 3}},
    {{5, 1000}, {1000, 3}},    {{2, 64, 256}, {256, 64}},
};

std::string matmul_label(const Shape& a, const Shape& b) {
  return "matmul " + im::shape_str(a) + " @ " + im::shape_str(b);
}

}  // namespace

TEST(Bf16Matmul, ForwardAndGradientsMatchCpuForEveryLowering) {
  REQUIRE_GPU();
  im::Generator gen(601);
  for (const auto& c : kMatmulCases) {
    expect_ops_match([](const std::vector<Tensor>& in) { return im::matmul(in[0], in[1]); },
                     {im::randn(c.a, gen), im::randn(c.b, gen)}, matmul_label(c.a, c.b), 602,
                     Match::kClose, Match::kClose);
  }
}

TEST(Bf16Matmul, TransposedAndSlicedOperandsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(603);
  // Both operands transposed (column-major to cuBLASLt).
  expect_ops_match(
      [](const std::vector<Tensor>& in) {
        return im::matmul(in[0].transpose(0, 1), in[1].transpose(0, 1));
      },
      {im::randn({37, 19}, gen), im::randn({23, 37}, gen)}, "matmul a^T b^T", 604, Match::kClose,
      Match::kClose);
  // A column slice: row stride larger than the width, start 3 elements (6 bytes) in.
  expect_ops_match(
      [](const std::vector<Tensor>& in) { return im::matmul(in[0].slice(1, 3, 8), in[1]); },
      {im::randn({37, 19}, gen), im::randn({5, 11}, gen)}, "matmul of a column slice", 605,
      Match::kClose, Match::kClose);
  // A batched operand transposed in its last two dims.
  expect_ops_match(
      [](const std::vector<Tensor>& in) { return im::matmul(in[0].transpose(1, 2), in[1]); },
      {im::randn({3, 17, 29}, gen), im::randn({3, 17, 13}, gen)}, "batched matmul x^T y", 606,
      Match::kClose, Match::kClose);
}

// ---- embedding ------------------------------------------------------------------------------

TEST(Bf16Indexing, EmbeddingForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(611);
  std::mt19937_64 rng(611);
  const int64_t vocab = 37;
  for (DType it : {DType::Int32, DType::Int64}) {
    for (int64_t width : {1, 7, 33, 257}) {
      for (int64_t padding_idx : {int64_t{-1}, int64_t{3}}) {
        // 65 ids over 37 rows: repeated ids (atomic accumulation) and the padding id.
        const Tensor ids = random_index({5, 13}, 0, vocab, it, rng);
        const std::string what = "embedding " + std::string(im::dtype_name(it)) + " width " +
                                 std::to_string(width) + " padding " + std::to_string(padding_idx);
        const std::vector<Tensor> leaves = expect_ops_match(
            [&](const std::vector<Tensor>& in) {
              return im::embedding(in[0], on_device_of(ids, in[0]), padding_idx);
            },
            {im::randn({vocab, width}, gen)}, what, 612, Match::kExact, Match::kClose);
        if (padding_idx >= 0) {
          const auto row = leaves[0].grad().to(Device::cpu()).select(0, padding_idx);
          for (double v : row.to_vector<double>()) EXPECT_EQ(v, 0.0) << what;
        }
      }
    }
  }
}

// 4096 ids into 3 rows: each gradient row sums ~1365 values. Summed in bf16 its error
// would grow with the partial sums (~n * 2^-9 / sqrt(6) against a sum of size sqrt(n):
// ~5% relative); summed in float and rounded once it stays at bf16's ~0.1%.
TEST(Bf16Indexing, EmbeddingBackwardAccumulatesManyRepeatsInFloat) {
  REQUIRE_GPU();
  im::Generator gen(613);
  std::mt19937_64 rng(613);
  const Tensor ids = random_index({4096}, 0, 3, DType::Int64, rng);
  expect_ops_match(
      [&](const std::vector<Tensor>& in) { return im::embedding(in[0], on_device_of(ids, in[0])); },
      {im::randn({3, 8}, gen)}, "embedding with 4096 ids over 3 rows", 614, Match::kExact,
      Match::kClose);
}

// ---- gather / scatter_add ---------------------------------------------------------------

TEST(Bf16Indexing, GatherForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(621);
  std::mt19937_64 rng(621);
  for (DType it : {DType::Int32, DType::Int64}) {
    for (bool transposed : {false, true}) {
      for (int64_t dim : {0, 1, 2, -1}) {
        const int64_t d = dim < 0 ? dim + 3 : dim;
        Shape ishape = {4, 7, 3};  // smaller than x [6, 9, 5] outside `dim`
        ishape[d] = 11;            // and longer along it (repeated picks)
        // x [6, 9, 5], or a permuted view of a [5, 9, 6] leaf.
        const Shape x_shape = {6, 9, 5};
        const Tensor index = random_index(ishape, 0, x_shape[d], it, rng);
        expect_ops_match(
            [&](const std::vector<Tensor>& in) {
              const Tensor x = transposed ? in[0].permute({2, 1, 0}) : in[0];
              return im::gather(x, dim, on_device_of(index, in[0]));
            },
            {im::randn(transposed ? Shape{5, 9, 6} : x_shape, gen)},
            "gather dim " + std::to_string(dim) + (transposed ? " permuted" : ""), 622,
            Match::kExact, Match::kClose);
      }
    }
  }
  // Many picks of few rows: the backward's scatter-add sums ~1365 values per element
  // (see EmbeddingBackwardAccumulatesManyRepeatsInFloat for why this needs float sums).
  const Tensor index = random_index({4096, 8}, 0, 3, DType::Int64, rng);
  expect_ops_match(
      [&](const std::vector<Tensor>& in) {
        return im::gather(in[0], 0, on_device_of(index, in[0]));
      },
      {im::randn({3, 8}, gen)}, "gather 4096 picks of 3 rows", 623, Match::kExact, Match::kClose);
}

TEST(Bf16Indexing, ScatterAddForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(631);
  std::mt19937_64 rng(631);
  for (DType it : {DType::Int32, DType::Int64}) {
    for (int64_t dim : {0, 1}) {
      for (bool strided_src : {false, true}) {
        // src [9, 35], larger than the index (only its leading block is read, the rest
        // gets a zero gradient); maybe a transposed view of a [35, 9] leaf.
        const Shape ishape = dim == 0 ? Shape{9, 31} : Shape{6, 34};
        const Tensor index = random_index(ishape, 0, dim == 0 ? 7 : 33, it, rng);
        expect_ops_match(
            [&](const std::vector<Tensor>& in) {
              const Tensor src = strided_src ? in[1].transpose(0, 1) : in[1];
              return im::scatter_add(in[0], dim, on_device_of(index, in[0]), src);
            },
            {im::randn({7, 33}, gen), im::randn(strided_src ? Shape{35, 9} : Shape{9, 35}, gen)},
            "scatter_add dim " + std::to_string(dim) + (strided_src ? " strided" : ""), 632,
            Match::kClose, Match::kExact);
      }
    }
  }
  // 4096 rows scattered into 3: float accumulation, rounded once (as for embedding).
  const Tensor index = random_index({4096, 8}, 0, 3, DType::Int32, rng);
  expect_ops_match(
      [&](const std::vector<Tensor>& in) {
        return im::scatter_add(in[0], 0, on_device_of(index, in[0]), in[1]);
      },
      {im::randn({3, 8}, gen), im::randn({4096, 8}, gen)}, "scatter_add of 4096 rows into 3", 633,
      Match::kClose, Match::kExact);
}

// ---- where / masked_fill ------------------------------------------------------------------

TEST(Bf16Indexing, WhereForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(641);
  for (const Shape& cshape : {Shape{7, 9}, Shape{1, 9}, Shape{7, 1}, Shape{}}) {
    const Tensor cond = im::bernoulli_mask(cshape, 0.4, gen);
    const std::string what = "where cond " + im::shape_str(cshape);
    // a: a transposed view of a [9, 7] leaf; b plain. The gradients are selections.
    expect_ops_match(
        [&](const std::vector<Tensor>& in) {
          return im::where(on_device_of(cond, in[0]), in[0].transpose(0, 1), in[1]);
        },
        {im::randn({9, 7}, gen), im::randn({7, 9}, gen)}, what, 642, Match::kExact, Match::kExact);
    // A broadcast operand: its gradient sums over the broadcast rows (sum_to in bf16).
    expect_ops_match(
        [&](const std::vector<Tensor>& in) {
          return im::where(on_device_of(cond, in[0]), in[0], in[1]);
        },
        {im::randn({1, 9}, gen), im::randn({7, 9}, gen)}, what + " broadcast a", 643, Match::kExact,
        Match::kClose);
  }
}

TEST(Bf16Indexing, MaskedFillForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(651);
  // Fill values exact in bf16, so the CPU's float fill is the same number.
  for (const Shape& mshape : {Shape{5, 33}, Shape{5, 1}, Shape{33}, Shape{1, 1}}) {
    for (double value : {-kInf, 0.0, 2.5}) {
      const Tensor mask = im::bernoulli_mask(mshape, 0.5, gen);
      expect_ops_match(
          [&](const std::vector<Tensor>& in) {
            return im::masked_fill(in[0].transpose(0, 1), on_device_of(mask, in[0]), value);
          },
          {im::randn({33, 5}, gen)},
          "masked_fill mask " + im::shape_str(mshape) + " value " + std::to_string(value), 652,
          Match::kExact, Match::kExact);
    }
  }
  // A strided mask (a transposed view) as well.
  const Tensor m_store = im::bernoulli_mask({33, 5}, 0.5, gen);
  expect_ops_match(
      [&](const std::vector<Tensor>& in) {
        return im::masked_fill(in[0], on_device_of(m_store, in[0]).transpose(0, 1), -1.0);
      },
      {im::randn({5, 33}, gen)}, "masked_fill with a transposed mask", 653, Match::kExact,
      Match::kExact);
}

// ---- topk ---------------------------------------------------------------------------------

TEST(Bf16Indexing, TopkMatchesCpuExactlyWithTiesNanAndInfinities) {
  REQUIRE_GPU();
  im::Generator gen(661);
  std::mt19937_64 rng(661);
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
    // Random values rounded to bf16 tie often too (8 significant bits).
    const Tensor special_values = Tensor::from_vector<double>(v, {rows, cols}).to(DType::Float32);
    for (const Tensor& x : {special_values, bf16_rounded(im::randn({rows, cols}, gen))}) {
      for (int64_t k : {int64_t{0}, int64_t{1}, (cols + 1) / 2, cols}) {
        const im::TopK c = im::topk(x, k, -1);
        const im::TopK g = im::topk(gpu_bf16(x), k, -1);
        const std::string what = "topk cols " + std::to_string(cols) + " k " + std::to_string(k);
        expect_match(g.values, c.values, Match::kExact, what);
        EXPECT_EQ(g.indices.to(Device::cpu()).to_vector<int64_t>(), c.indices.to_vector<int64_t>())
            << what;
      }
    }
    // Along dim 0 (the front-end moves it last).
    const Tensor y = bf16_rounded(im::randn({cols, 6}, gen));
    const int64_t k = std::min<int64_t>(cols, 4);
    const im::TopK c0 = im::topk(y, k, 0), g0 = im::topk(gpu_bf16(y), k, 0);
    expect_match(g0.values, c0.values, Match::kExact, "topk dim 0");
    EXPECT_EQ(g0.indices.to(Device::cpu()).to_vector<int64_t>(), c0.indices.to_vector<int64_t>());
  }
}

TEST(Bf16Indexing, TopkBackwardMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(662);
  for (int64_t dim : {0, 1}) {
    // Each entry is picked at most once: its gradient is one upstream value, exactly.
    expect_ops_match(
        [dim](const std::vector<Tensor>& in) { return im::topk(in[0], 5, dim).values; },
        {im::randn({37, 65}, gen)}, "topk backward dim " + std::to_string(dim), 663, Match::kExact,
        Match::kExact);
  }
}

// ---- concat / stack / split / flip / group_sum ----------------------------------------------

TEST(Bf16Join, ConcatStackAndSplitMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(671);
  for (int64_t dim : {0, 1, 2, -1}) {
    // Three inputs that differ in `dim` only (one of them empty there).
    std::vector<Tensor> values;
    for (int64_t n : {3, 0, 5}) {
      Shape shape = {4, 6, 7};
      shape[dim < 0 ? dim + 3 : dim] = n;
      values.push_back(im::randn(shape, gen));
    }
    expect_ops_match([dim](const std::vector<Tensor>& in) { return im::concat(in, dim); }, values,
                     "concat dim " + std::to_string(dim), 672, Match::kExact, Match::kExact);
  }
  // split into parts (one empty), reassembled out of order: every gradient is a copy.
  expect_ops_match(
      [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> parts = im::split(in[0], {2, 0, 4, 5}, 1);
        EXPECT_EQ(parts.size(), 4u);
        return im::concat({parts[3], parts[0], parts[2]}, 1);
      },
      {im::randn({5, 11, 3}, gen)}, "split", 673, Match::kExact, Match::kExact);
  // stack with an input used twice: its gradient sums two upstream slices.
  for (int64_t dim : {0, 1, 3, -1}) {
    expect_ops_match(
        [dim](const std::vector<Tensor>& in) {
          return im::stack({in[0], in[1], in[0]}, dim);
        },
        {im::randn({5, 11, 3}, gen), im::randn({5, 11, 3}, gen)},
        "stack dim " + std::to_string(dim), 674, Match::kExact, Match::kClose);
  }
}

TEST(Bf16Join, FlipMatchesCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(681);
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{1}, 0}, {{7}, 0}, {{3, 257}, 1}, {{3, 257}, 0}, {{2, 33, 5}, 1}, {{2, 33, 5}, -1},
  };
  for (const auto& [shape, dim] : cases) {
    expect_ops_match([dim](const std::vector<Tensor>& in) { return im::flip(in[0], dim); },
                     {im::randn(shape, gen)},
                     "flip " + im::shape_str(shape) + " dim " + std::to_string(dim), 682,
                     Match::kExact, Match::kExact);
  }
  // Flip of a non-contiguous view (negative strides over a transposed layout).
  expect_ops_match([](const std::vector<Tensor>& in) { return im::flip(in[0].transpose(0, 1), 1); },
                   {im::randn({9, 13}, gen)}, "flip of a transposed view", 683, Match::kExact,
                   Match::kExact);
}

TEST(Bf16Join, GroupSumHandsTheCollectiveAContiguousBf16Tensor) {
  REQUIRE_GPU();
  im::Generator gen(691);
  // A stand-in for the sum over replicas: reversal along dim 0 is linear and its own
  // adjoint, as that sum is, so group_sum's backward (the same reduce) is its gradient.
  const im::GroupReduce reverse = [](Tensor& t) {
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_EQ(t.dtype(), t.device().is_cuda() ? DType::BFloat16 : DType::Float32);
    t.copy_(im::flip(t.detach(), 0));
  };
  expect_ops_match(
      [&](const std::vector<Tensor>& in) { return im::group_sum(in[0].transpose(0, 1), reverse); },
      {im::randn({5, 6}, gen)}, "group_sum of a transposed view", 692, Match::kExact,
      Match::kExact);
}

// ---- concept masks ------------------------------------------------------------------------
//
// This binary does not link the layers, so the bf16 mask kernels are held to their float32
// instantiation on the same (bf16-rounded) values, which layers/concept_masks_gpu_test.cpp
// holds to the CPU code bit for bit. Both widen their inputs to double exactly, so the
// buckets and masks must be equal, ties included.

namespace {

// `t` rounded to bf16, contiguous on the GPU as float32 and as bf16.
struct BothDtypes {
  Tensor f32, bf16;
  explicit BothDtypes(const Tensor& t)
      : f32(bf16_rounded(t).to(Device::cuda())), bf16(gpu_bf16(t)) {}
};

std::vector<int64_t> buckets_with(const BothDtypes& c, const BothDtypes& phi, bool bf16) {
  const int64_t K = c.f32.size(0), H = phi.f32.size(0), dc = c.f32.size(1);
  const Tensor out = Tensor::empty({K}, DType::Int64, Device::cuda());
  if (bf16)
    im::kernels::cuda::concept_buckets<im::bfloat16>(
        c.bf16.data<im::bfloat16>(), phi.bf16.data<im::bfloat16>(), out.data<int64_t>(), K, H, dc);
  else
    im::kernels::cuda::concept_buckets<float>(c.f32.data<float>(), phi.f32.data<float>(),
                                              out.data<int64_t>(), K, H, dc);
  return out.to_vector<int64_t>();
}

std::vector<uint8_t> bucket_mask_with(const BothDtypes& p, const std::vector<int64_t>& buckets,
                                      int64_t top_r, bool bf16) {
  const int64_t H = p.f32.size(-1), rows = p.f32.numel() / H;
  const int64_t K = static_cast<int64_t>(buckets.size());
  const Tensor b = Tensor::from_vector<int64_t>(buckets, {K}).to(Device::cuda());
  const Tensor mask = Tensor::empty({rows, K}, DType::UInt8, Device::cuda());
  if (bf16)
    im::kernels::cuda::bucket_mask<im::bfloat16>(p.bf16.data<im::bfloat16>(), b.data<int64_t>(),
                                                 mask.data<uint8_t>(), rows, H, K, top_r);
  else
    im::kernels::cuda::bucket_mask<float>(p.f32.data<float>(), b.data<int64_t>(),
                                          mask.data<uint8_t>(), rows, H, K, top_r);
  return mask.to_vector<uint8_t>();
}

std::vector<uint8_t> budget_mask_with(const BothDtypes& z, int64_t k_min, int64_t k_max,
                                      bool bf16) {
  const int64_t K = z.f32.size(-1), rows = z.f32.numel() / K;
  const double log_k = K > 1 ? std::log(static_cast<double>(K)) : 1.0;
  const Tensor mask = Tensor::empty({rows, K}, DType::UInt8, Device::cuda());
  if (bf16)
    im::kernels::cuda::budget_mask<im::bfloat16>(z.bf16.data<im::bfloat16>(), mask.data<uint8_t>(),
                                                 rows, K, k_min, k_max, log_k);
  else
    im::kernels::cuda::budget_mask<float>(z.f32.data<float>(), mask.data<uint8_t>(), rows, K, k_min,
                                          k_max, log_k);
  return mask.to_vector<uint8_t>();
}

}  // namespace

TEST(Bf16ConceptMasks, ConceptBucketsMatchFloatIncludingTies) {
  REQUIRE_GPU();
  im::Generator gen(701);
  for (int64_t K : {1, 7, 64}) {
    for (int64_t H : {1, 5, 24, 70}) {
      const int64_t dc = 13;
      std::vector<float> c = im::randn({K, dc}, gen).to_vector<float>();
      std::vector<float> phi = im::randn({H, dc}, gen).to_vector<float>();
      // Ties: a repeated bucket embedding (the lower bucket wins) and a zero centre
      // (every dot 0: bucket 0).
      if (H >= 5)
        for (int64_t j = 0; j < dc; ++j) phi[4 * dc + j] = phi[2 * dc + j];
      for (int64_t j = 0; j < dc; ++j) c[j] = 0;
      const BothDtypes ct(Tensor::from_vector<float>(c, {K, dc}));
      const BothDtypes pt(Tensor::from_vector<float>(phi, {H, dc}));
      const std::vector<int64_t> ref = buckets_with(ct, pt, false);
      EXPECT_EQ(buckets_with(ct, pt, true), ref) << "K " << K << " H " << H;
      EXPECT_EQ(ref[0], 0);
    }
  }
}

TEST(Bf16ConceptMasks, BucketMaskMatchesFloatWithTiesAndEmptyBucketSets) {
  REQUIRE_GPU();
  im::Generator gen(702);
  std::mt19937_64 rng(702);
  const int64_t B = 3, L = 17, H = 24, K = 37;
  for (bool coarse : {true, false}) {
    for (int64_t top_r : {1, 2, 5, 24}) {
      // Probabilities on a coarse grid (many ties) or rounded to bf16 (ties too: 8
      // significant bits); buckets drawn from 0..5 only.
      std::vector<float> probs = im::rand_uniform({B, L, H}, gen, 0, 1).to_vector<float>();
      if (coarse)
        for (auto& v : probs) v = std::floor(v * 4) / 4;
      std::uniform_int_distribution<int64_t> pick(0, 5);
      std::vector<int64_t> buckets(K);
      for (auto& b : buckets) b = pick(rng);
      // Row 0: buckets 0..5 have the lowest probability: an empty set unless top_r > 18.
      for (int64_t h = 0; h < H; ++h) probs[h] = h < 6 ? 0.0f : 0.5f;
      // Row 1: all equal: the top r are buckets 0..r-1 (ties by index).
      for (int64_t h = 0; h < H; ++h) probs[H + h] = 0.25f;
      const BothDtypes p(Tensor::from_vector<float>(probs, {B, L, H}));
      const std::vector<uint8_t> ref = bucket_mask_with(p, buckets, top_r, false);
      EXPECT_EQ(bucket_mask_with(p, buckets, top_r, true), ref)
          << "top_r " << top_r << (coarse ? " coarse" : "");
      // Row 0 fell back to all concepts.
      EXPECT_TRUE(std::all_of(ref.begin(), ref.begin() + K, [](uint8_t m) { return m == 0; }));
    }
  }
}

TEST(Bf16ConceptMasks, BudgetMaskMatchesFloatWithTiesAndMaskedEntries) {
  REQUIRE_GPU();
  im::Generator gen(703);
  std::mt19937_64 rng(703);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t K : {1, 2, 7, 37, 64}) {
    for (auto [k_min, k_max] : {std::pair<int64_t, int64_t>{2, 8}, {1, 1}, {3, 100}}) {
      const int64_t B = 4, L = 19;
      std::vector<float> z = im::randn({B, L, K}, gen).to_vector<float>();
      std::bernoulli_distribution masked(0.3);
      for (auto& v : z)
        if (masked(rng)) v = -inf;
      // Row 0: every entry masked. Row 1: all equal (the largest budget, picked by
      // index). Row 2: one finite entry. Row 3: ties in pairs. Row 4: a peaked row.
      for (int64_t k = 0; k < K; ++k) {
        z[k] = -inf;
        z[K + k] = 0.75f;
        z[2 * K + k] = k == K / 2 ? 1.0f : -inf;
        z[3 * K + k] = static_cast<float>(k / 2);
        z[4 * K + k] = k == 1 ? 30.0f : 0.0f;
      }
      const BothDtypes s(Tensor::from_vector<float>(z, {B, L, K}));
      const std::vector<uint8_t> ref = budget_mask_with(s, k_min, k_max, false);
      EXPECT_EQ(budget_mask_with(s, k_min, k_max, true), ref)
          << "K " << K << " k_min " << k_min << " k_max " << k_max;
      // Row 0 (nothing finite) is all masked; row 2 keeps its one finite entry.
      EXPECT_TRUE(std::all_of(ref.begin(), ref.begin() + K, [](uint8_t m) { return m == 1; }));
      EXPECT_EQ(std::count(ref.begin() + 2 * K, ref.begin() + 3 * K, uint8_t{0}), 1);
    }
  }
}
