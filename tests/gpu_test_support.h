// Helpers for the gpu-labelled suites: skip without a GPU, and compare a CUDA result
// with the CPU reference by relative L2 error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>

#include "core/device.h"
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

}  // namespace im::testing
