// Allocator interface. The CPU allocator hands out 64-byte aligned blocks (one cache
// line, wide enough for AVX-512); the CUDA allocator sits behind the same interface.
// Both count live and peak bytes, which the tests use to prove the tape frees memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace im {

struct AllocatorStats {
  int64_t live_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;  // number of successful allocate() calls so far
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual Device device() const = 0;
  virtual AllocatorStats stats() const = 0;
};

Allocator& cpu_allocator();
// The allocator for a device; throws im::Error when the device is not usable.
Allocator& allocator_for(Device device);

// Counters shared by allocator implementations.
class AllocationCounter {
 public:
  void add(size_t bytes);
  void remove(size_t bytes);
  AllocatorStats snapshot() const;

 private:
  std::atomic<int64_t> live_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> count_{0};
};

}  // namespace im
