#include "kernels/cuda/runtime.h"

#include <cuda_runtime_api.h>

#include <stdexcept>

#include "kernels/cuda/stream.h"

namespace im::kernels::cuda {

namespace {
void check(cudaError_t err, const std::string& what) {
  if (err != cudaSuccess)
    throw std::runtime_error("CUDA error in " + what + ": " + cudaGetErrorString(err));
}
}  // namespace

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) {
      if (err == cudaErrorNoDevice) {
        *why = "no GPU: no CUDA device found";
      } else if (err == cudaErrorInsufficientDriver) {
        *why = "no GPU: no CUDA driver (libcuda) found";
      } else {
        *why = std::string("no GPU: ") + cudaGetErrorString(err);
      }
    }
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  if (count == 0 && why) *why = "no GPU: no CUDA device found";
  return count;
}

std::string device_name(int index) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  return prop.name;
}

void set_device(int index) {
  check(cudaSetDevice(index), "cudaSetDevice");
}

void* device_malloc(size_t bytes) {
  void* p = nullptr;
  check(cudaMalloc(&p, bytes), "cudaMalloc of " + std::to_string(bytes) + " bytes");
  return p;
}

void device_free(void* ptr) {
  check(cudaFree(ptr), "cudaFree");
}

// Copies are queued on the current stream, behind the kernels that produce their source.
// From pageable host memory the call returns once `src` has been staged, so the caller
// may reuse it; to the host it waits for the stream, so the data is there on return.
void memcpy_host_to_device(void* dst, const void* src, size_t bytes) {
  const auto s = static_cast<cudaStream_t>(current_stream());
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "cudaMemcpy host to device");
}

void memcpy_device_to_host(void* dst, const void* src, size_t bytes) {
  const auto s = static_cast<cudaStream_t>(current_stream());
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "cudaMemcpy device to host");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize after a copy to the host");
}

void memcpy_device_to_device(void* dst, const void* src, size_t bytes) {
  const auto s = static_cast<cudaStream_t>(current_stream());
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s),
        "cudaMemcpy device to device");
}

void synchronize() {
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

void check_last_launch(const char* what) {
  check(cudaGetLastError(), what);
}

}  // namespace im::kernels::cuda
