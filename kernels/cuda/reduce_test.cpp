// CUDA reductions (sum, mean, max, var) against the CPU reference on fresh random inputs:
// forward and backward, over last, leading, middle and all dims, with and without
// keepdim, at sizes that take every launch shape (one warp per row, one block per row,
// rows split into segments, column sums split over rows). Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::expect_op_matches_cpu;
using im::testing::float_tolerance;
using im::testing::rel_error;

namespace {

struct Case {
  im::Shape shape;
  std::vector<int64_t> dims;
  bool keepdim;
};

// Launch shapes noted against each case (rows x cols as the kernel sees them).
const std::vector<Case> kCases = {
    {{1}, {}, false},               // 1 x 1
    {{7}, {0}, true},               // 1 x 7
    {{3, 1}, {1}, false},           // 3 x 1
    {{65, 33}, {1}, false},         // warp per row
    {{65, 33}, {0}, true},          // leading dim: column sums
    {{3, 257}, {-1}, true},         // warp per row
    {{3, 4099}, {1}, false},        // block per row, split into segments
    {{65, 1025}, {1}, false},       // block per row, just past the warp limit
    {{1, 100003}, {1}, false},      // one long row in many segments
    {{2, 3, 5, 7}, {0, 2}, false},  // non-adjacent, non-last dims
    {{2, 3, 5, 7}, {1, 3}, true},   // keepdim
    {{2, 3, 5, 7}, {1}, false},     // a middle dim
    {{4, 1000, 3}, {0, 1}, false},  // leading dims: column sums split over rows
    {{5000, 7}, {0}, false},        // few columns, many rows
    {{65, 1000}, {}, false},        // everything: one row of 65000
    {{17, 1, 4099}, {2}, false},    // size-1 dim kept
    {{1000, 4099}, {0}, false},     // wide column sums, split 8 ways over rows
    {{1, 100003}, {0}, true},       // column sums of one row
    {{16, 3001}, {0}, false},       // column sums of few rows
    {{17, 3001}, {0}, false},       // just past few rows: the tiled column sums
    {{50000, 3}, {0}, false},       // narrow rows after the permute: lane groups of 4
};

}  // namespace

TEST(CudaReduce, SumAndMeanMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(101);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : kCases) {
      const std::string what = im::shape_str(c.shape) + " dims " + im::shape_str(c.dims) +
                               (c.keepdim ? " keepdim " : " ") + im::dtype_name(dt);
      const Tensor x = im::randn(c.shape, gen, dt);
      expect_op_matches_cpu([&](const Tensor& t) { return im::sum(t, c.dims, c.keepdim); }, x,
                            "sum " + what, 4321);
      expect_op_matches_cpu([&](const Tensor& t) { return im::mean(t, c.dims, c.keepdim); }, x,
                            "mean " + what, 4321);
    }
  }
}

TEST(CudaReduce, SumOfNonContiguousInputMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(102);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = im::randn({33, 257}, gen, dt);
    expect_op_matches_cpu([](const Tensor& t) { return im::sum(t.transpose(0, 1), {1}); }, x,
                          "sum of a transposed view", 4321);
    expect_op_matches_cpu([](const Tensor& t) { return im::sum(t.transpose(0, 1), {0}); }, x,
                          "column sum of a transposed view", 4321);
  }
}

TEST(CudaReduce, MaxMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(103);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : kCases) {
      const std::string what = im::shape_str(c.shape) + " dims " + im::shape_str(c.dims) +
                               (c.keepdim ? " keepdim " : " ") + im::dtype_name(dt);
      const Tensor x = im::randn(c.shape, gen, dt);
      expect_op_matches_cpu([&](const Tensor& t) { return im::max(t, c.dims, c.keepdim); }, x,
                            "max " + what, 4321);
    }
  }
}

TEST(CudaReduce, VarMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(104);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : kCases) {
      // A reduced set of one element has no unbiased variance (NaN on both devices).
      int64_t reduced = 1;
      if (c.dims.empty()) {
        reduced = im::shape_numel(c.shape);
      } else {
        for (int64_t d : c.dims)
          reduced *= c.shape[d < 0 ? d + static_cast<int64_t>(c.shape.size()) : d];
      }
      // An offset mean checks the two-pass (and segment-merge) arithmetic: E[x^2] - E[x]^2
      // would lose digits here.
      const Tensor x = im::add(im::randn(c.shape, gen, dt), 100.0);
      for (int64_t correction : {0, 1}) {
        if (reduced <= correction) continue;
        const std::string what = im::shape_str(c.shape) + " dims " + im::shape_str(c.dims) +
                                 " correction " + std::to_string(correction) +
                                 (c.keepdim ? " keepdim " : " ") + im::dtype_name(dt);
        expect_op_matches_cpu(
            [&](const Tensor& t) { return im::var(t, c.dims, correction, c.keepdim); }, x,
            "var " + what, 4321);
      }
    }
  }
}

TEST(CudaReduce, VarOfASingleElementIsNanOnBothDevices) {
  REQUIRE_GPU();
  const Tensor x = Tensor::from_vector<double>({1.0, 2.0, 3.0}, {3, 1});
  const auto cpu = im::var(x, {1}, 1).to_vector<double>();
  const auto gpu = im::var(x.to(Device::cuda()), {1}, 1).to(Device::cpu()).to_vector<double>();
  ASSERT_EQ(gpu.size(), 3u);
  for (size_t i = 0; i < gpu.size(); ++i) {
    EXPECT_TRUE(std::isnan(cpu[i]));
    EXPECT_TRUE(std::isnan(gpu[i])) << i;
  }
}

// Ties go to the first maximum and the first NaN wins, in every launch shape: short rows
// (one warp), long rows (one block) and very long rows (segments merged afterwards).
TEST(CudaReduce, MaxTakesTheFirstMaximumAndTheFirstNan) {
  REQUIRE_GPU();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t cols : {7, 1000, 4099, 100003}) {
      // Row 0: a tie at 3/5 and 4/5 of the row; row 1: NaNs at 1/2 and the end (and a
      // larger number before them); row 2: all -inf; row 3: the maximum at column 0 and
      // at the end.
      std::vector<double> v(4 * cols, 0.0);
      for (int64_t c = 0; c < cols; ++c) {
        v[c] = std::sin(0.37 * c);                // row 0: values in [-1, 1]
        v[cols + c] = std::cos(0.11 * c);         // row 1
        v[2 * cols + c] = -inf;                   // row 2
        v[3 * cols + c] = -1.0 - (c % 13) * 0.1;  // row 3
      }
      const int64_t tie_a = 3 * cols / 5, tie_b = 4 * cols / 5;
      v[tie_a] = 7.0;
      v[tie_b] = 7.0;
      const int64_t nan_a = cols / 2, nan_b = cols - 1;
      v[cols + nan_a / 2] = 50.0;
      v[cols + nan_a] = nan;
      v[cols + nan_b] = nan;
      v[3 * cols] = 2.0;
      v[3 * cols + cols - 1] = 2.0;
      const Tensor x = Tensor::from_vector<double>(v, {4, cols}).to(dt);

      for (Device dev : {Device::cpu(), Device::cuda()}) {
        Tensor leaf = dev.is_cuda() ? x.to(dev) : x.clone();
        leaf.set_requires_grad(true);
        const Tensor m = im::max(leaf, {1});
        const auto mv = m.detach().to(Device::cpu()).to_vector<double>();
        const std::string what =
            std::string(dev.is_cuda() ? "cuda" : "cpu") + " cols " + std::to_string(cols);
        EXPECT_EQ(mv[0], 7.0) << what;
        EXPECT_TRUE(std::isnan(mv[1])) << what;
        EXPECT_EQ(mv[2], -inf) << what;
        EXPECT_EQ(mv[3], 2.0) << what;
        // The gradient of the maximum goes to the argmax alone.
        im::sum(m).backward();
        const auto g = leaf.grad().to(Device::cpu()).to_vector<double>();
        const int64_t expected[4] = {tie_a, nan_a, 0, 0};
        for (int64_t r = 0; r < 4; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            if (g[r * cols + c] != (c == expected[r] ? 1.0 : 0.0)) {
              ADD_FAILURE() << what << ": gradient " << g[r * cols + c] << " at row " << r
                            << " column " << c << ", argmax expected at " << expected[r];
              break;
            }
          }
        }
      }
    }
  }
}
