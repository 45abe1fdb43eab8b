// CUDA softmax and log_softmax against the CPU reference: forward and backward, along the
// last and other dims, at row lengths that take both launch shapes (a warp per row up to
// 1024 columns, a block per row beyond), with logits of +-1000 and with -inf entries as
// masked_fill leaves them (a row that is all -inf is NaN on both devices).
// Skipped without a GPU.
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

// Relative L2 error over the entries that are finite on the CPU; an entry that is NaN or
// infinite on one device must be the same (NaN, or the same infinity) on the other, else
// the result is infinity.
double rel_error_nonfinite(const Tensor& gpu, const Tensor& cpu) {
  const auto a = gpu.to(Device::cpu()).to_vector<double>();
  const auto b = cpu.to(Device::cpu()).to_vector<double>();
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) || std::isnan(a[i])) {
      if (!(std::isnan(a[i]) && std::isnan(b[i]))) return INFINITY;
      continue;
    }
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

struct Named {
  const char* name;
  Tensor (*op)(const Tensor&, int64_t);
};
const Named kOps[] = {{"softmax", &im::softmax}, {"log_softmax", &im::log_softmax}};

}  // namespace

TEST(CudaSoftmax, LastDimMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(201);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t rows : {1, 3, 65}) {
      for (int64_t cols : {1, 7, 33, 257, 1000, 1024, 1025, 4099, 10007}) {
        const Tensor x = im::mul(im::randn({rows, cols}, gen, dt), 3.0);
        for (const Named& o : kOps) {
          expect_op_matches_cpu([&](const Tensor& t) { return o.op(t, -1); }, x,
                                std::string(o.name) + " [" + std::to_string(rows) + ", " +
                                    std::to_string(cols) + "] " + im::dtype_name(dt),
                                777);
        }
      }
    }
  }
}

TEST(CudaSoftmax, OtherDimsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(202);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor a = im::randn({5, 33, 7}, gen, dt);
    const Tensor b = im::randn({3, 1025, 2}, gen, dt);
    for (const Named& o : kOps) {
      for (int64_t dim : {0, 1, -2}) {
        expect_op_matches_cpu([&](const Tensor& t) { return o.op(t, dim); }, a,
                              std::string(o.name) + " [5, 33, 7] dim " + std::to_string(dim) + " " +
                                  im::dtype_name(dt),
                              777);
      }
      expect_op_matches_cpu([&](const Tensor& t) { return o.op(t, 1); }, b,
                            std::string(o.name) + " [3, 1025, 2] dim 1 " + im::dtype_name(dt), 777);
      // A non-contiguous input along the last dim.
      expect_op_matches_cpu([&](const Tensor& t) { return o.op(t.transpose(0, 2), -1); }, a,
                            std::string(o.name) + " transposed " + im::dtype_name(dt), 777);
    }
  }
}

TEST(CudaSoftmax, LargeLogitsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(203);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t cols : {7, 257, 4099}) {
      const Tensor x = im::rand_uniform({3, cols}, gen, -1000.0, 1000.0, dt);
      for (const Named& o : kOps) {
        const std::string what = std::string(o.name) + " logits in [-1000, 1000), cols " +
                                 std::to_string(cols) + " " + im::dtype_name(dt);
        expect_op_matches_cpu([&](const Tensor& t) { return o.op(t, -1); }, x, what, 777);
        // Nothing overflowed: the outputs are finite on the GPU.
        const auto y = o.op(x.to(Device::cuda()), -1).to(Device::cpu()).to_vector<double>();
        for (double v : y) ASSERT_TRUE(std::isfinite(v)) << what;
      }
    }
  }
}

TEST(CudaSoftmax, MinusInfinityEntriesMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(204);
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t cols : {7, 1000, 4099}) {
      // Row 0: every third entry -inf; row 1: all -inf but one; row 2: all -inf (NaN on
      // both devices); row 3: none.
      auto v = im::randn({4, cols}, gen, DType::Float64).to_vector<double>();
      for (int64_t c = 0; c < cols; ++c) {
        if (c % 3 == 1) v[c] = -inf;
        if (c != cols / 2) v[cols + c] = -inf;
        v[2 * cols + c] = -inf;
      }
      const Tensor x = Tensor::from_vector<double>(v, {4, cols}).to(dt);
      for (const Named& o : kOps) {
        const std::string what = std::string(o.name) + " with -inf, cols " + std::to_string(cols) +
                                 " " + im::dtype_name(dt);
        expect_op_matches_cpu([&](const Tensor& t) { return o.op(t, -1); }, x, what, 777,
                              &rel_error_nonfinite);
        const auto y = o.op(x.to(Device::cuda()), -1).to(Device::cpu()).to_vector<double>();
        for (int64_t c = 0; c < cols; ++c) ASSERT_TRUE(std::isnan(y[2 * cols + c])) << what;
        // The one entry left in row 1 takes everything.
        EXPECT_NEAR(y[cols + cols / 2], std::string(o.name) == "softmax" ? 1.0 : 0.0, 1e-6) << what;
      }
    }
  }
}
