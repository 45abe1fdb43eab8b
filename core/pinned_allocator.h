// Page-locked ("pinned") host memory for batches on their way to a GPU. A copy to the GPU
// from pinned memory is an asynchronous DMA on the current stream: the host does not wait
// for it and it runs at the link's speed, where a copy from ordinary (pageable) memory
// blocks the host while the driver stages it through a bounce buffer (4-5 ms a step for a
// 224² batch of 64 on an H100 host, 2026-11-24).
//
// The loader assembles batches straight into it (data::LoaderOptions::pin_memory) in its
// worker threads, so nothing copies them on the host again. Blocks are cached by size and
// a block an asynchronous copy reads is handed out again only once that copy has run.
#pragma once

#include "core/allocator.h"

namespace im {

// Pins for GPU `device_index` from now on (a run calls this once it has picked its GPU).
// Before that, in a CPU-only build, and without a GPU, pinned tensors are plain host memory.
void enable_pinned_memory(int device_index);
bool pinned_memory_enabled();

// Device cpu; its blocks are page-locked once enable_pinned_memory has run.
Allocator& pinned_host_allocator();

// True when `ptr` lies in a page-locked block of the pinned allocator.
bool is_pinned_pointer(const void* ptr);

// An asynchronous copy out of the block holding `ptr` was queued on the current stream:
// the block is not reused before the stream has passed this point.
void record_pinned_use(const void* ptr);

}  // namespace im
