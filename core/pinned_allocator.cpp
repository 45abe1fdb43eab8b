#include "core/pinned_allocator.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "core/error.h"

#if IM_WITH_CUDA
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#endif

namespace im {

namespace {

std::atomic<int> g_pinned_device{-1};

#if IM_WITH_CUDA
// Never destroyed (as the CUDA allocator): at exit the runtime may already be gone.
class PinnedHostAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    const int device = g_pinned_device.load();
    if (device < 0) return cpu_allocator().allocate(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      Block& b = free_[i];
      if (b.bytes != bytes || (b.event && !kernels::cuda::event_done(b.event))) continue;
      live_.push_back(b);
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
      counter_.add(bytes);
      return live_.back().ptr;
    }
    // Worker threads have no current device of their own; pin on the run's GPU, not on
    // GPU 0 (a context there would cost every rank of a node memory on GPU 0).
    kernels::cuda::set_device(device);
    Block b;
    b.ptr = kernels::cuda::pinned_malloc(bytes);
    b.bytes = bytes;
    b.device = device;
    live_.push_back(b);
    counter_.add(bytes);
    return b.ptr;
  }

  void deallocate(void* ptr, size_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < live_.size(); ++i) {
      if (live_[i].ptr != ptr) continue;
      free_.push_back(live_[i]);
      live_.erase(live_.begin() + static_cast<std::ptrdiff_t>(i));
      counter_.remove(bytes);
      return;
    }
    cpu_allocator().deallocate(ptr, bytes);  // allocated before pinning was enabled
  }

  bool owns(const void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    return find_live(ptr) != nullptr;
  }

  void record_use(const void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    Block* b = find_live(ptr);
    IM_CHECK(b, "record_pinned_use: ", ptr, " is not in a pinned block");
    if (!b->event) {
      kernels::cuda::set_device(b->device);
      b->event = kernels::cuda::create_event();
    }
    kernels::cuda::record_event(b->event, kernels::cuda::current_stream());
  }

  Device device() const override { return Device::cpu(); }
  AllocatorStats stats() const override { return counter_.snapshot(); }

 private:
  struct Block {
    void* ptr = nullptr;
    size_t bytes = 0;
    int device = 0;
    kernels::cuda::EventHandle event = nullptr;  // the last asynchronous copy out of it
  };

  Block* find_live(const void* ptr) {
    const char* p = static_cast<const char*>(ptr);
    for (Block& b : live_) {
      const char* base = static_cast<const char*>(b.ptr);
      if (p >= base && p < base + b.bytes) return &b;
    }
    return nullptr;
  }

  std::mutex mutex_;
  std::vector<Block> live_, free_;  // a handful: the batches in flight
  AllocationCounter counter_;
};

PinnedHostAllocator& pinned() {
  static PinnedHostAllocator* allocator = new PinnedHostAllocator();
  return *allocator;
}
#endif

}  // namespace

void enable_pinned_memory(int device_index) {
#if IM_WITH_CUDA
  IM_CHECK(device_index >= 0, "enable_pinned_memory: bad GPU index ", device_index);
  g_pinned_device.store(device_index);
#else
  (void)device_index;
#endif
}

bool pinned_memory_enabled() {
  return g_pinned_device.load() >= 0;
}

Allocator& pinned_host_allocator() {
#if IM_WITH_CUDA
  return pinned();
#else
  return cpu_allocator();
#endif
}

bool is_pinned_pointer(const void* ptr) {
#if IM_WITH_CUDA
  return pinned_memory_enabled() && pinned().owns(ptr);
#else
  (void)ptr;
  return false;
#endif
}

void record_pinned_use(const void* ptr) {
#if IM_WITH_CUDA
  pinned().record_use(ptr);
#else
  (void)ptr;
#endif
}

}  // namespace im
