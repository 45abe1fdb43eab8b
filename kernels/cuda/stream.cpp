#include "kernels/cuda/stream.h"

#include <cuda_runtime_api.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace im::kernels::cuda {

namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

thread_local StreamHandle tls_stream = nullptr;  // null: the device's compute stream

}  // namespace

StreamHandle compute_stream() {
  // Created once per device and never destroyed (the runtime may be gone at exit).
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.size() <= static_cast<size_t>(device)) streams.resize(device + 1, nullptr);
  if (!streams[device])
    check(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking),
          "cudaStreamCreateWithFlags (compute stream)");
  return streams[device];
}

StreamHandle current_stream() {
  return tls_stream ? tls_stream : compute_stream();
}

StreamGuard::StreamGuard(StreamHandle stream) : previous_(tls_stream) {
  tls_stream = stream;
}
StreamGuard::~StreamGuard() {
  tls_stream = previous_;
}

StreamHandle create_stream() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return s;
}

void destroy_stream(StreamHandle stream) {
  check(cudaStreamDestroy(static_cast<cudaStream_t>(stream)), "cudaStreamDestroy");
}

void stream_synchronize(StreamHandle stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

EventHandle create_event(bool timing) {
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming),
        "cudaEventCreate");
  return e;
}

void destroy_event(EventHandle event) {
  check(cudaEventDestroy(static_cast<cudaEvent_t>(event)), "cudaEventDestroy");
}

void record_event(EventHandle event, StreamHandle stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)),
        "cudaEventRecord");
}

void stream_wait_event(StreamHandle stream, EventHandle event) {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0),
        "cudaStreamWaitEvent");
}

void event_synchronize(EventHandle event) {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event)), "cudaEventSynchronize");
}

bool event_done(EventHandle event) {
  const cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (err == cudaErrorNotReady) return false;
  check(err, "cudaEventQuery");
  return true;
}

float event_elapsed_ms(EventHandle start, EventHandle end) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)),
        "cudaEventElapsedTime");
  return ms;
}

void* pinned_malloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMallocHost(&p, bytes), "cudaMallocHost");
  return p;
}

void pinned_free(void* ptr) {
  check(cudaFreeHost(ptr), "cudaFreeHost");
}

void memcpy_host_to_device_async(void* dst, const void* src, size_t bytes, StreamHandle stream) {
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync host to device");
}

}  // namespace im::kernels::cuda
