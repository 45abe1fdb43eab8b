#include "core/caching_allocator.h"

#include <algorithm>
#include <bit>

#include "core/error.h"

namespace im {

namespace {

constexpr size_t kMinBlock = 512;

void* try_raw_alloc(const RawMemory& raw, size_t bytes) {
  try {
    return raw.alloc(bytes);
  } catch (const std::exception&) {
    return nullptr;
  }
}

}  // namespace

CachingAllocator::CachingAllocator(Device device, RawMemory raw)
    : device_(device), raw_(std::move(raw)) {}

CachingAllocator::~CachingAllocator() {
  try {
    release_cached_locked();
  } catch (const std::exception&) {
    // A destructor must not throw; the process is giving the memory up anyway.
  }
}

size_t CachingAllocator::size_class(size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  // The power of two at or below `bytes`, in quarters: 1, 1.25, 1.5, 1.75, 2 x that.
  const size_t base = std::bit_floor(bytes);
  const size_t quarter = base / 4;
  return (bytes + quarter - 1) / quarter * quarter;
}

void* CachingAllocator::pop(FreeLists& lists, uintptr_t stream, size_t size) {
  auto it = lists.find({stream, size});
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* p = it->second.back();
  it->second.pop_back();
  return p;
}

void* CachingAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t size = size_class(bytes);
  const uintptr_t stream = raw_.stream();
  std::lock_guard<std::mutex> lock(mutex_);
  void* p = open_pool_ ? pop(pool_free_[open_pool_], stream, size) : nullptr;
  const bool from_pool = p != nullptr;
  if (!p) p = pop(free_, stream, size);
  if (p) {
    ++stats_.cache_hits;
  } else {
    p = try_raw_alloc(raw_, size);
    if (!p && stats_.reserved_bytes > 0) {
      // Out of memory with blocks cached: give them back and try once more.
      release_cached_locked();
      p = try_raw_alloc(raw_, size);
    }
    if (!p)
      throw Error(detail::concat("out of memory on ", device_.str(), " allocating ", bytes,
                                 " bytes (", stats_.live_bytes, " bytes in use, ",
                                 stats_.reserved_bytes, " reserved)"));
    ++stats_.raw_allocations;
    stats_.reserved_bytes += static_cast<int64_t>(size);
    stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  }
  if (open_pool_ && !from_pool) ++pool_blocks_[open_pool_];  // a new block for the pool
  in_use_[p] = Block{size, stream, open_pool_};
  ++stats_.allocations;
  stats_.live_bytes += static_cast<int64_t>(bytes);
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.live_bytes);
  return p;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = in_use_.find(ptr);
  IM_CHECK(it != in_use_.end(), "CachingAllocator on ", device_.str(),
           ": freeing a pointer it did not hand out");
  Block& b = it->second;
  // A shared block freed while a pool is open was used by its capture: it joins the pool.
  // (A block of another pool stays with the graph that owns it.)
  if (open_pool_ && b.pool == 0) {
    b.pool = open_pool_;
    ++pool_blocks_[open_pool_];
  }
  FreeLists& lists = b.pool ? pool_free_[b.pool] : free_;
  lists[{b.stream, b.size}].push_back(ptr);
  in_use_.erase(it);
  stats_.live_bytes -= static_cast<int64_t>(bytes);
}

int64_t CachingAllocator::open_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  IM_CHECK(open_pool_ == 0, "CachingAllocator on ", device_.str(), ": pool ", open_pool_,
           " is still open");
  open_pool_ = next_pool_++;
  pool_blocks_[open_pool_] = 0;
  return open_pool_;
}

void CachingAllocator::close_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  open_pool_ = 0;
}

void CachingAllocator::release_pool(int64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (open_pool_ == id) open_pool_ = 0;
  for (auto& [key, blocks] : pool_free_[id])
    for (void* p : blocks) free_[key].push_back(p);
  pool_free_.erase(id);
  pool_blocks_.erase(id);
  for (auto& [p, block] : in_use_)
    if (block.pool == id) block.pool = 0;
}

int64_t CachingAllocator::pool_blocks(int64_t id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = pool_blocks_.find(id);
  return it == pool_blocks_.end() ? 0 : it->second;
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [key, blocks] : free_) {
    for (void* p : blocks) {
      raw_.free(p);
      ++stats_.raw_frees;
      stats_.reserved_bytes -= static_cast<int64_t>(key.second);
    }
  }
  free_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return AllocatorStats{stats_.live_bytes, stats_.peak_bytes, stats_.allocations};
}

CachingStats CachingAllocator::caching_stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace im
