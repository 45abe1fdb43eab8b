// Until a run enables pinning (it does so when it picks a GPU), pinned tensors are plain
// host memory: CPU runs and GPU-less machines never touch the CUDA runtime for them.
#include "core/pinned_allocator.h"

#include <gtest/gtest.h>

#include "core/tensor.h"

TEST(PinnedMemory, IsPlainHostMemoryUntilEnabled) {
  if (im::pinned_memory_enabled()) GTEST_SKIP() << "pinning already enabled in this process";
  im::Tensor t = im::Tensor::empty_pinned({5, 7});
  t.fill_(2.0);
  EXPECT_TRUE(t.device().is_cpu());
  EXPECT_FALSE(t.is_pinned());
  EXPECT_EQ(t.pinned().data_ptr(), t.data_ptr()) << "pinned() without pinning is a no-op";
  EXPECT_EQ(t.to_vector<float>()[34], 2.0f);
}
