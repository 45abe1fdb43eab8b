// The caching allocator's bookkeeping, driven with host memory: what it asks the backing
// allocator for, what it reuses, per-stream free lists, statistics, and out-of-memory.
#include "core/caching_allocator.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/error.h"

namespace im {
namespace {

// Host memory standing in for cudaMalloc: counts calls and can be given a capacity.
struct FakeDevice {
  int64_t capacity = -1;  // bytes it can hand out at once; -1: unlimited
  int64_t held = 0;
  int64_t allocs = 0, frees = 0;
  std::map<void*, size_t> sizes;
  uintptr_t current_stream = 0;

  RawMemory raw() {
    RawMemory r;
    r.alloc = [this](size_t bytes) -> void* {
      if (capacity >= 0 && held + static_cast<int64_t>(bytes) > capacity)
        throw std::runtime_error("fake device out of memory");
      void* p = std::malloc(bytes);
      sizes[p] = bytes;
      held += static_cast<int64_t>(bytes);
      ++allocs;
      return p;
    };
    r.free = [this](void* p) {
      held -= static_cast<int64_t>(sizes.at(p));
      sizes.erase(p);
      std::free(p);
      ++frees;
    };
    r.stream = [this] { return current_stream; };
    return r;
  }
};

TEST(CachingAllocator, SizeClassesArePowersOfTwoInQuarters) {
  EXPECT_EQ(CachingAllocator::size_class(1), 512u);
  EXPECT_EQ(CachingAllocator::size_class(512), 512u);
  EXPECT_EQ(CachingAllocator::size_class(513), 640u);
  EXPECT_EQ(CachingAllocator::size_class(640), 640u);
  EXPECT_EQ(CachingAllocator::size_class(641), 768u);
  EXPECT_EQ(CachingAllocator::size_class(1000), 1024u);
  EXPECT_EQ(CachingAllocator::size_class(1025), 1280u);
  EXPECT_EQ(CachingAllocator::size_class(3u << 20), 3u << 20);
  EXPECT_EQ(CachingAllocator::size_class((3u << 20) + 1), 7u << 19);
  // Never more than 25% above the request.
  for (size_t b = 513; b < (1u << 22); b = b * 5 / 4 + 7) {
    const size_t c = CachingAllocator::size_class(b);
    EXPECT_GE(c, b);
    EXPECT_LE(c, b + b / 4 + 1) << b;
  }
}

TEST(CachingAllocator, ATrainingLoopStopsAllocatingAfterItsFirstStep) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  const std::vector<size_t> step_sizes = {4096, 1 << 20, 777, 4096, 123456, 1 << 20, 65};
  for (int step = 0; step < 10; ++step) {
    std::vector<void*> live;
    for (size_t s : step_sizes) live.push_back(alloc.allocate(s));
    if (step == 0) {
      EXPECT_EQ(dev.allocs, static_cast<int64_t>(step_sizes.size()));
    }
    for (size_t i = 0; i < live.size(); ++i) alloc.deallocate(live[i], step_sizes[i]);
  }
  const CachingStats s = alloc.caching_stats();
  EXPECT_EQ(dev.allocs, static_cast<int64_t>(step_sizes.size()));  // none after step 0
  EXPECT_EQ(dev.frees, 0);
  EXPECT_EQ(s.raw_allocations, static_cast<int64_t>(step_sizes.size()));
  EXPECT_EQ(s.allocations, 10 * static_cast<int64_t>(step_sizes.size()));
  EXPECT_EQ(s.cache_hits, 9 * static_cast<int64_t>(step_sizes.size()));
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.reserved_bytes, dev.held);
}

TEST(CachingAllocator, LiveBlocksAreDistinctAndSimilarSizesShareAClass) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  void* a = alloc.allocate(1000);
  void* b = alloc.allocate(1000);
  EXPECT_NE(a, b);
  alloc.deallocate(a, 1000);
  void* c = alloc.allocate(900);  // class 1024, like 1000: a is reused
  EXPECT_EQ(c, a);
  void* d = alloc.allocate(1100);  // class 1280: a fresh block
  EXPECT_NE(d, a);
  EXPECT_NE(d, b);
  EXPECT_EQ(dev.allocs, 3);
  alloc.deallocate(b, 1000);
  alloc.deallocate(c, 900);
  alloc.deallocate(d, 1100);
}

TEST(CachingAllocator, BlocksAreReusedOnlyOnTheStreamThatFreedThem) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  dev.current_stream = 1;
  void* a = alloc.allocate(4096);
  alloc.deallocate(a, 4096);
  dev.current_stream = 2;
  void* b = alloc.allocate(4096);
  EXPECT_NE(a, b);  // stream 2 cannot know stream 1 is done with it
  dev.current_stream = 1;
  void* c = alloc.allocate(4096);
  EXPECT_EQ(c, a);
  EXPECT_EQ(dev.allocs, 2);
  alloc.deallocate(b, 4096);
  alloc.deallocate(c, 4096);
}

TEST(CachingAllocator, StatisticsCountLivePeakAndReservedBytes) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  void* a = alloc.allocate(1000);
  void* b = alloc.allocate(3000);
  CachingStats s = alloc.caching_stats();
  EXPECT_EQ(s.live_bytes, 4000);
  EXPECT_EQ(s.peak_bytes, 4000);
  EXPECT_EQ(s.reserved_bytes, 1024 + 3072);
  alloc.deallocate(b, 3000);
  s = alloc.caching_stats();
  EXPECT_EQ(s.live_bytes, 1000);
  EXPECT_EQ(s.peak_bytes, 4000);
  EXPECT_EQ(s.reserved_bytes, 1024 + 3072);  // cached, still held
  EXPECT_EQ(alloc.stats().live_bytes, 1000);
  alloc.release_cached();
  s = alloc.caching_stats();
  EXPECT_EQ(s.reserved_bytes, 1024);
  EXPECT_EQ(s.peak_reserved_bytes, 1024 + 3072);
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(dev.held, 1024);
  alloc.deallocate(a, 1000);
}

TEST(CachingAllocator, OutOfMemoryReturnsTheCacheAndRetriesThenNamesTheRequest) {
  FakeDevice dev;
  dev.capacity = 8192;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  void* a = alloc.allocate(4096);
  void* b = alloc.allocate(4096);
  alloc.deallocate(a, 4096);
  alloc.deallocate(b, 4096);
  // 6144 fits only once the two cached 4096-byte blocks are given back.
  void* c = alloc.allocate(6000);
  EXPECT_NE(c, nullptr);
  EXPECT_EQ(dev.frees, 2);
  EXPECT_EQ(alloc.caching_stats().reserved_bytes, 6144);
  try {
    alloc.allocate(5000);
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("out of memory on cuda:0 allocating 5000 bytes"), std::string::npos)
        << what;
    EXPECT_NE(what.find("6000 bytes in use, 6144 reserved"), std::string::npos) << what;
  }
  alloc.deallocate(c, 6000);
}

TEST(CachingAllocator, FreeingAForeignPointerIsAnError) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  int x = 0;
  EXPECT_THROW(alloc.deallocate(&x, 4), Error);
}

TEST(CachingAllocator, DestructionReturnsTheCachedBlocks) {
  FakeDevice dev;
  {
    CachingAllocator alloc(Device::cuda(0), dev.raw());
    void* a = alloc.allocate(100);
    void* b = alloc.allocate(100000);
    alloc.deallocate(a, 100);
    alloc.deallocate(b, 100000);
  }
  EXPECT_EQ(dev.allocs, 2);
  EXPECT_EQ(dev.frees, 2);
  EXPECT_EQ(dev.held, 0);
}

// A private pool (CUDA graph capture): blocks the capture allocated or freed are never
// handed to allocations outside it, and the capture reuses its own blocks first.
TEST(CachingAllocator, APrivatePoolKeepsTheBlocksItsCaptureTouched) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  void* before = alloc.allocate(4096);  // allocated before the capture, freed during it
  void* shared_free = alloc.allocate(1000);
  alloc.deallocate(shared_free, 1000);  // a shared free block the capture may take

  const int64_t pool = alloc.open_pool();
  EXPECT_GT(pool, 0);
  EXPECT_THROW(alloc.open_pool(), Error);  // one at a time
  void* in_capture = alloc.allocate(1000);
  EXPECT_EQ(in_capture, shared_free);  // taken from the shared lists into the pool
  alloc.deallocate(in_capture, 1000);
  EXPECT_EQ(alloc.allocate(1000), in_capture);  // reused within the capture
  alloc.deallocate(before, 4096);               // joins the pool
  void* output = alloc.allocate(100);           // still live after the capture
  EXPECT_EQ(alloc.pool_blocks(pool), 3);
  alloc.close_pool();

  // Outside the pool nothing the capture touched comes back.
  std::vector<std::pair<void*, size_t>> outside;
  for (size_t bytes : {4096, 4096, 4096, 1000, 1000, 1000})
    outside.emplace_back(alloc.allocate(bytes), bytes);
  for (const auto& [p, bytes] : outside) {
    EXPECT_NE(p, before);
    EXPECT_NE(p, in_capture);
  }
  alloc.deallocate(output, 100);  // back to the pool, not the shared lists
  void* small = alloc.allocate(100);
  EXPECT_NE(small, output);
  outside.emplace_back(small, 100);

  // Released (the graph is gone): its blocks are shared again.
  alloc.release_pool(pool);
  EXPECT_EQ(alloc.pool_blocks(pool), 0);
  EXPECT_EQ(alloc.allocate(4096), before);
  alloc.deallocate(in_capture, 1000);  // in use at release: freed to the shared lists
  EXPECT_EQ(alloc.allocate(1000), in_capture);
  alloc.deallocate(in_capture, 1000);
  alloc.deallocate(before, 4096);
  for (const auto& [p, bytes] : outside) alloc.deallocate(p, bytes);
}

// A second pool never takes the first one's blocks, even ones freed while it is open.
TEST(CachingAllocator, PoolsDoNotShareBlocks) {
  FakeDevice dev;
  CachingAllocator alloc(Device::cuda(0), dev.raw());
  const int64_t first = alloc.open_pool();
  void* a = alloc.allocate(2048);
  alloc.close_pool();
  const int64_t second = alloc.open_pool();
  alloc.deallocate(a, 2048);
  void* b = alloc.allocate(2048);
  EXPECT_NE(a, b);
  alloc.close_pool();
  EXPECT_EQ(alloc.pool_blocks(first), 1);
  EXPECT_EQ(alloc.pool_blocks(second), 1);
  alloc.release_pool(first);
  alloc.release_pool(second);
  alloc.deallocate(b, 2048);
}

}  // namespace
}  // namespace im
