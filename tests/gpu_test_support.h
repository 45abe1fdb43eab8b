// Helpers for the gpu-labelled suites: skip without a GPU, and compare a CUDA result
// with the CPU reference by relative L2 error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/tensor.h"

// Skips the test (ctest reports it as skipped) on a machine without a usable GPU.
#define REQUIRE_GPU()                                                                \
  do {                                                                               \
    if (im::cuda_device_count() == 0) GTEST_SKIP() << im::cuda_unavailable_reason(); \
  } while (0)

namespace im::testing {

// ||gpu - cpu|| / ||cpu|| over all elements (absolute when cpu is all zero); infinity
// when either side has a NaN, so a NaN never passes a tolerance.
inline double rel_error(const Tensor& gpu, const Tensor& cpu) {
  const auto a = gpu.to_vector<double>();  // to_vector copies off the GPU, outside autograd
  const auto b = cpu.to_vector<double>();
  EXPECT_EQ(a.size(), b.size());
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// A CPU tensor's copy on the first GPU.
inline Tensor on_gpu(const Tensor& t) {
  return t.to(Device::cuda());
}

// The bound every CUDA kernel is held to against its CPU kernel (relative L2 error).
inline double float_tolerance(DType dt) {
  return dt == DType::Float32 ? 1e-5 : 1e-10;
}

// A leaf with its own storage holding `values` on `device` (undefined stays undefined).
inline Tensor leaf_on(const Tensor& values, Device device) {
  if (!values.defined()) return Tensor();
  Tensor t = values.detach().to(device).contiguous();
  if (t.shares_storage_with(values)) t = t.clone();  // grads must not alias the input
  t.set_requires_grad(true);
  return t;
}

using ErrorFn = double (*)(const Tensor&, const Tensor&);

// Runs `op` on a CPU leaf and a GPU leaf holding `values`, compares the outputs, then
// backpropagates the same random upstream gradient w (drawn from `w_seed`) through both
// and compares the input gradients, each within float_tolerance.
inline void expect_op_matches_cpu(const std::function<Tensor(const Tensor&)>& op,
                                  const Tensor& values, const std::string& what, uint64_t w_seed,
                                  ErrorFn error = &rel_error) {
  const double tol = float_tolerance(values.dtype());
  const Tensor xc = leaf_on(values, Device::cpu()), xg = leaf_on(values, Device::cuda());
  const Tensor yc = op(xc), yg = op(xg);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(error(yg.detach(), yc.detach()), tol) << what << " forward";
  Generator wgen(w_seed);
  const Tensor w = randn(yc.shape(), wgen, yc.dtype());
  // Backward from y with upstream w: d(sum(y * w))/dy = w whatever y holds (inf, NaN).
  yc.backward(w);
  yg.backward(w.to(Device::cuda()));
  ASSERT_TRUE(xc.grad().defined()) << what;
  ASSERT_TRUE(xg.grad().defined()) << what;
  EXPECT_TRUE(xg.grad().device().is_cuda()) << what;
  EXPECT_LT(error(xg.grad(), xc.grad()), tol) << what << " backward";
}

// The bound a bfloat16 CUDA kernel is held to (relative L2 error) against the float32
// CPU kernel run on the same bfloat16-rounded inputs: bf16 keeps 8 significant bits, so
// rounding the output alone costs up to 2^-9 per element.
constexpr double kBf16Tolerance = 1e-2;

// `values` rounded to bfloat16 and widened back to float32: the CPU reference's inputs.
inline Tensor bf16_rounded(const Tensor& values) {
  return values.detach().to(DType::BFloat16).to(DType::Float32);
}

// As expect_op_matches_cpu for the bfloat16 path: `op` runs on a float32 CPU leaf
// holding `values` rounded to bfloat16 and on a bfloat16 GPU leaf; the bfloat16 output
// and input gradient (from the same bf16-rounded upstream gradient) are widened to
// float32 and compared within kBf16Tolerance.
inline void expect_op_matches_cpu_bf16(const std::function<Tensor(const Tensor&)>& op,
                                       const Tensor& values, const std::string& what,
                                       uint64_t w_seed) {
  const Tensor rounded = bf16_rounded(values);
  const Tensor xc = leaf_on(rounded, Device::cpu());
  const Tensor xg = leaf_on(rounded.to(DType::BFloat16), Device::cuda());
  const Tensor yc = op(xc), yg = op(xg);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.dtype(), DType::BFloat16) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg.detach().to(DType::Float32), yc.detach()), kBf16Tolerance)
      << what << " forward";
  Generator wgen(w_seed);
  const Tensor w = bf16_rounded(randn(yc.shape(), wgen, DType::Float32));
  yc.backward(w);
  yg.backward(w.to(DType::BFloat16).to(Device::cuda()));
  ASSERT_TRUE(xc.grad().defined()) << what;
  ASSERT_TRUE(xg.grad().defined()) << what;
  EXPECT_EQ(xg.grad().dtype(), DType::BFloat16) << what;
  EXPECT_LT(rel_error(xg.grad().to(DType::Float32), xc.grad()), kBf16Tolerance)
      << what << " backward";
}

}  // namespace im::testing
