// The allocator for CUDA device memory: one CachingAllocator per GPU over cudaMalloc and
// cudaFree (core/caching_allocator.h). Created on first use and never destroyed: at exit
// the CUDA runtime may already be gone, and the driver frees the memory with the process.
#include <memory>
#include <mutex>
#include <vector>

#include "core/allocator.h"
#include "core/caching_allocator.h"
#include "core/error.h"
#include "kernels/cuda/runtime.h"

namespace im {

namespace {

CachingAllocator* make_cuda_allocator(int index) {
  RawMemory raw;
  raw.alloc = [index](size_t bytes) {
    kernels::cuda::set_device(index);
    return kernels::cuda::device_malloc(bytes);
  };
  raw.free = [index](void* p) {
    kernels::cuda::set_device(index);
    kernels::cuda::device_free(p);
  };
  return new CachingAllocator(Device::cuda(index), std::move(raw));
}

}  // namespace

Allocator& cuda_allocator(int device_index) {
  static std::mutex mutex;
  static std::vector<CachingAllocator*> allocators;  // never freed: see above
  std::lock_guard<std::mutex> lock(mutex);
  if (allocators.empty()) {
    std::string why;
    const int count = kernels::cuda::device_count(&why);
    IM_CHECK(count > 0, "cannot place a tensor on cuda:", device_index, ": ", why);
    for (int i = 0; i < count; ++i) allocators.push_back(make_cuda_allocator(i));
  }
  IM_CHECK(device_index >= 0 && device_index < static_cast<int>(allocators.size()),
           "cuda:", device_index, " does not exist (", allocators.size(), " GPUs visible)");
  return *allocators[device_index];
}

}  // namespace im
