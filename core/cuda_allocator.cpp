// Allocator for CUDA device memory. For now each allocation is a cudaMalloc; the
// caching allocator (size-class free lists per stream) replaces this behind the same
// interface with the CUDA backend issue.
#include <memory>
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "kernels/cuda/runtime.h"

namespace im {

namespace {

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) {}

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    kernels::cuda::set_device(index_);
    void* p = kernels::cuda::device_malloc(bytes);
    counter_.add(bytes);
    return p;
  }
  void deallocate(void* ptr, size_t bytes) override {
    if (!ptr) return;
    kernels::cuda::set_device(index_);
    kernels::cuda::device_free(ptr);
    counter_.remove(bytes);
  }
  Device device() const override { return Device::cuda(index_); }
  AllocatorStats stats() const override { return counter_.snapshot(); }

 private:
  int index_;
  AllocationCounter counter_;
};

}  // namespace

Allocator& cuda_allocator(int device_index) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<CudaAllocator>> allocators;
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators.empty()) {
    std::string why;
    const int count = kernels::cuda::device_count(&why);
    IM_CHECK(count > 0, "cannot place a tensor on cuda:", device_index, ": ", why);
    for (int i = 0; i < count; ++i) allocators.push_back(std::make_unique<CudaAllocator>(i));
  }
  IM_CHECK(device_index >= 0 && device_index < static_cast<int>(allocators.size()),
           "cuda:", device_index, " does not exist (", allocators.size(), " GPUs visible)");
  return *allocators[device_index];
}

}  // namespace im
