// The CUPTI kernel table that `bench --kernel-profile` prints: it sees the kernels run
// between start() and stop(), by name, and nothing outside that window.
#include "kernels/cuda/kernel_profiler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "core/ops.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::Tensor;
using im::kernels::cuda::KernelProfile;
using im::kernels::cuda::KernelProfiler;

namespace {

const im::kernels::cuda::KernelTotal* find(const KernelProfile& p, const std::string& part) {
  for (const auto& k : p.kernels)
    if (k.name.find(part) != std::string::npos) return &k;
  return nullptr;
}

}  // namespace

TEST(KernelProfiler, CountsTheKernelsOfItsWindowByName) {
  REQUIRE_GPU();
  const Tensor a = Tensor::ones({1 << 20}, im::DType::Float32, Device::cuda());
  const Tensor before = im::exp(a);  // outside the window: not counted
  KernelProfiler profiler;
  try {
    profiler.start();
  } catch (const std::runtime_error& e) {
    // Under compute-sanitizer (scripts/device-gpu-tests.sh memcheck) CUPTI is taken.
    if (std::string(e.what()).find("already using CUPTI") != std::string::npos)
      GTEST_SKIP() << e.what();
    throw;
  }
  Tensor sum = a;
  for (int i = 0; i < 3; ++i) sum = im::add(sum, a);
  const KernelProfile p = profiler.stop();

  const auto* add = find(p, "binary_flat_kernel");
  ASSERT_NE(add, nullptr) << im::kernels::cuda::format_kernel_profile(p, 1, 10);
  EXPECT_EQ(add->launches, 3);
  EXPECT_GT(add->total_ms, 0.0);
  EXPECT_EQ(find(p, "unary_kernel"), nullptr) << "the exp before start() was counted";
  EXPECT_GT(p.busy_ms, 0.0);
  EXPECT_LE(p.busy_ms, p.kernel_ms + 1e-9);
  EXPECT_LE(p.busy_ms, p.window_ms);
  EXPECT_EQ(sum.to(Device::cpu()).to_vector<float>()[12345], 4.0f);

  const std::string table = im::kernels::cuda::format_kernel_profile(p, 1, 5);
  EXPECT_NE(table.find("GPU busy"), std::string::npos) << table;
  EXPECT_NE(table.find("binary_flat_kernel"), std::string::npos) << table;

  // A second window starts from nothing.
  profiler.start();
  const KernelProfile empty = profiler.stop();
  EXPECT_EQ(find(empty, "binary_flat_kernel"), nullptr);
}

TEST(KernelProfiler, StopWithoutStartIsAnError) {
  KernelProfiler profiler;
  EXPECT_THROW(profiler.stop(), std::runtime_error);
}
