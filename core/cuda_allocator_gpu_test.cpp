// The CUDA caching allocator on a real GPU (ctest label gpu; skipped without one): device
// tensors made and dropped step after step reuse their blocks, so cudaMalloc is called in
// the first step only, and the data in reused blocks round-trips exactly.
#include <gtest/gtest.h>

#include <numeric>

#include "core/caching_allocator.h"
#include "core/tensor.h"
#include "kernels/cuda/runtime.h"

namespace im {
namespace {

bool have_gpu() {
  std::string why;
  return kernels::cuda::device_count(&why) > 0;
}

TEST(CudaCachingAllocator, RepeatedStepsReuseBlocksWithoutNewCudaMallocs) {
  if (!have_gpu()) GTEST_SKIP() << "SKIPPED: no GPU";
  auto& alloc = dynamic_cast<CachingAllocator&>(allocator_for(Device::cuda(0)));
  const std::vector<int64_t> sizes = {1, 17, 1000, 4097, 65537, 1 << 20, 3 * (1 << 20) + 5};
  int64_t raw_after_first = 0;
  for (int step = 0; step < 5; ++step) {
    std::vector<Tensor> live;
    for (int64_t n : sizes) {
      std::vector<float> host(static_cast<size_t>(n));
      std::iota(host.begin(), host.end(), static_cast<float>(step));
      Tensor t = Tensor::from_vector<float>(host, {n}).to(Device::cuda(0));
      const std::vector<float> back = t.to(Device::cpu()).to_vector<float>();
      ASSERT_EQ(back, host) << "size " << n << " step " << step;
      live.push_back(t);
    }
    if (step == 0) raw_after_first = alloc.caching_stats().raw_allocations;
  }
  const CachingStats s = alloc.caching_stats();
  EXPECT_EQ(s.raw_allocations, raw_after_first);
  EXPECT_GT(s.cache_hits, 0);
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_GE(s.reserved_bytes, s.peak_bytes);
  std::printf(
      "cuda:0 caching allocator: %lld cudaMalloc calls for %lld allocations; peak %lld "
      "bytes in use, %lld reserved\n",
      static_cast<long long>(s.raw_allocations), static_cast<long long>(s.allocations),
      static_cast<long long>(s.peak_bytes), static_cast<long long>(s.peak_reserved_bytes));
  alloc.release_cached();
  EXPECT_EQ(alloc.caching_stats().reserved_bytes, 0);
}

}  // namespace
}  // namespace im
