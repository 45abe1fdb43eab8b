// Pinned host memory for batches: tensors in it copy to the GPU asynchronously and give the
// same values, and a block is reused only once the copies out of it have run.
#include "core/pinned_allocator.h"

#include <gtest/gtest.h>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/cuda/runtime.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;

TEST(PinnedMemory, BatchesCopyToTheGpuAsynchronouslyAndReuseTheirBlocks) {
  REQUIRE_GPU();
  im::enable_pinned_memory(0);
  im::Generator gen(5);
  const Tensor values = im::randn({64, 3, 31, 17}, gen);
  const Tensor host = values.pinned();
  ASSERT_TRUE(host.is_pinned());
  EXPECT_FALSE(values.is_pinned());
  EXPECT_EQ(host.pinned().data_ptr(), host.data_ptr()) << "already pinned: no copy";
  EXPECT_EQ(im::testing::rel_error(host.to(Device::cuda()), values), 0.0);

  // Many copies in flight from blocks freed right after queueing them: each must still
  // read what its block held when it was queued.
  std::vector<Tensor> on_gpu;
  for (int i = 0; i < 8; ++i) {
    Tensor staged = Tensor::empty_pinned(values.shape());
    staged.copy_(im::mul(values, static_cast<double>(i)));
    on_gpu.push_back(staged.to(Device::cuda()));
  }  // each staged block is freed here, possibly before its copy ran
  im::kernels::cuda::synchronize();
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(im::testing::rel_error(on_gpu[i], im::mul(values, static_cast<double>(i))), 0.0)
        << "copy " << i;

  // Once the copies ran, a freed block of the same size comes back.
  const void* first = nullptr;
  {
    Tensor a = Tensor::empty_pinned({1000}, DType::Int64);
    first = a.data_ptr();
  }
  Tensor b = Tensor::empty_pinned({1000}, DType::Int64);
  EXPECT_EQ(b.data_ptr(), first);
  EXPECT_TRUE(b.is_pinned());
}
