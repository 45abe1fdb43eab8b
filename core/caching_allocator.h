// A caching allocator for device memory (the CUDA backend's; device-agnostic so the CPU
// tests can drive it with host memory). Freed blocks are kept in free lists keyed by
// (stream, size class) and handed out again, so a training loop that allocates the same
// activation sizes every step stops calling cudaMalloc/cudaFree after its first step:
// both synchronise the device, and cudaFree stalls every stream. Requests round up to a
// size class (powers of two split in four: at most 25% waste; 512-byte minimum). A block
// freed on one stream is only reused on that stream, where stream order alone makes reuse
// safe; work on another stream would need an event first. When the backing allocation
// fails, every cached block is returned and the allocation tried once more.
//
// Private pools serve CUDA graph capture. A captured graph replays with the addresses it
// was captured with, so every block it touched must stay out of everyone else's hands while
// the graph lives. While a pool is open, allocations come from the pool's own free lists
// first (then the shared ones, or new memory), and each block allocated or freed then
// belongs to the pool: when freed it goes back to the pool, never to the shared lists.
// Closing the pool stops drawing from it; releasing it (the graph is gone) hands its
// blocks back to the shared lists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/allocator.h"

namespace im {

// Where the cached memory comes from. `alloc` throws (or returns null) when it cannot;
// `stream` names the calling thread's current stream (0: the default stream).
struct RawMemory {
  std::function<void*(size_t)> alloc;
  std::function<void(void*)> free;
  std::function<uintptr_t()> stream = [] { return uintptr_t{0}; };
};

struct CachingStats {
  int64_t live_bytes = 0;  // requested bytes of blocks in use
  int64_t peak_bytes = 0;
  int64_t reserved_bytes = 0;  // held from the backing allocator: in use plus cached
  int64_t peak_reserved_bytes = 0;
  int64_t allocations = 0;      // allocate() calls
  int64_t raw_allocations = 0;  // backing allocations (cudaMalloc calls)
  int64_t raw_frees = 0;
  int64_t cache_hits = 0;  // allocate() calls served from a free list
};

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(Device device, RawMemory raw);
  ~CachingAllocator() override;  // returns the cached blocks (blocks in use are leaked)
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  Device device() const override { return device_; }
  AllocatorStats stats() const override;
  CachingStats caching_stats() const;
  // Returns every cached (free) block to the backing allocator.
  void release_cached();

  // The size class a request of `bytes` is served from.
  static size_t size_class(size_t bytes);

  // Opens a new private pool (one at a time) and returns its id (> 0).
  int64_t open_pool();
  // Allocations stop drawing from the open pool; its blocks stay its own.
  void close_pool();
  // Hands pool `id`'s blocks to the shared free lists (in-use ones when they are freed).
  void release_pool(int64_t id);
  // Blocks (free or in use) pool `id` holds.
  int64_t pool_blocks(int64_t id) const;

 private:
  using FreeLists = std::map<std::pair<uintptr_t, size_t>, std::vector<void*>>;  // (stream, class)
  struct Block {
    size_t size;  // its size class
    uintptr_t stream;
    int64_t pool = 0;  // 0: shared
  };
  void release_cached_locked();
  static void* pop(FreeLists& lists, uintptr_t stream, size_t size);

  Device device_;
  RawMemory raw_;
  mutable std::mutex mutex_;
  FreeLists free_;                          // shared
  std::map<int64_t, FreeLists> pool_free_;  // each private pool's free blocks
  std::map<int64_t, int64_t> pool_blocks_;  // blocks each private pool owns
  int64_t open_pool_ = 0, next_pool_ = 1;
  std::unordered_map<void*, Block> in_use_;
  CachingStats stats_;
};

}  // namespace im
