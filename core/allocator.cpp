#include "core/allocator.h"

#include <malloc.h>

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace im {

void AllocationCounter::add(size_t bytes) {
  const int64_t now = live_.fetch_add(static_cast<int64_t>(bytes)) + static_cast<int64_t>(bytes);
  int64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
  count_.fetch_add(1);
}

void AllocationCounter::remove(size_t bytes) {
  live_.fetch_sub(static_cast<int64_t>(bytes));
}

AllocatorStats AllocationCounter::snapshot() const {
  return AllocatorStats{live_.load(), peak_.load(), count_.load()};
}

namespace {

class CpuAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;

  CpuAllocator() {
    // Training allocates and frees the same large activation buffers every step. By
    // default glibc serves blocks above 128 KiB with mmap and unmaps them on free, so
    // every step page-faults its memory in again (most of a CPU step's time, measured).
    // Keep freed memory in the process instead.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded);
    if (!p) throw Error(detail::concat("out of CPU memory allocating ", bytes, " bytes"));
    counter_.add(bytes);
    return p;
  }
  void deallocate(void* ptr, size_t bytes) override {
    if (!ptr) return;
    std::free(ptr);
    counter_.remove(bytes);
  }
  Device device() const override { return Device::cpu(); }
  AllocatorStats stats() const override { return counter_.snapshot(); }

 private:
  AllocationCounter counter_;
};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator instance;
  return instance;
}

#if IM_WITH_CUDA
Allocator& cuda_allocator(int device_index);  // core/cuda_allocator.cpp
#endif

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
#if IM_WITH_CUDA
  return cuda_allocator(device.index);
#else
  throw Error("cannot place a tensor on " + device.str() + ": " + cuda_unavailable_reason());
#endif
}

}  // namespace im
