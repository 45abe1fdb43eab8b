// Streams, events and pinned host memory, callable from plain C++ (handles are opaque
// pointers: cudaStream_t and cudaEvent_t). Every kernel, copy and library call of this
// project runs on the *current stream*: the device's compute stream (created on first
// use, non-blocking, one per GPU) unless a StreamGuard picks another one for this thread.
// The caching allocator keys its free lists by this stream, so memory freed by one
// step's kernels is reused by the next step's without any synchronisation.
#pragma once

#include <cstddef>

namespace im::kernels::cuda {

using StreamHandle = void*;  // cudaStream_t
using EventHandle = void*;   // cudaEvent_t

// The stream work of this thread goes to on the current device.
StreamHandle current_stream();
// The compute stream of the current device (the default current stream).
StreamHandle compute_stream();

// Makes `stream` current for this thread while alive.
class StreamGuard {
 public:
  explicit StreamGuard(StreamHandle stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  StreamHandle previous_;
};

StreamHandle create_stream();  // non-blocking, on the current device
void destroy_stream(StreamHandle stream);
void stream_synchronize(StreamHandle stream);

EventHandle create_event(bool timing = false);
void destroy_event(EventHandle event);
void record_event(EventHandle event, StreamHandle stream);
// Work queued on `stream` after this call waits for `event` (no host wait).
void stream_wait_event(StreamHandle stream, EventHandle event);
void event_synchronize(EventHandle event);
bool event_done(EventHandle event);
float event_elapsed_ms(EventHandle start, EventHandle end);

// Page-locked host memory: host-to-device copies from it are truly asynchronous.
void* pinned_malloc(size_t bytes);
void pinned_free(void* ptr);
// Queued on `stream`; `src` must stay untouched until the stream has passed the copy.
void memcpy_host_to_device_async(void* dst, const void* src, size_t bytes, StreamHandle stream);

}  // namespace im::kernels::cuda
