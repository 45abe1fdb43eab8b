// Shared by the .cu files: the launch stream, grid sizes and the launch check. Every
// kernel goes on the current stream (kernels/cuda/stream.h), never on the legacy default
// stream, which does not order with the non-blocking compute stream.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"

namespace im::kernels::cuda {

inline cudaStream_t stream() {
  return static_cast<cudaStream_t>(current_stream());
}

// Throws naming `what` when a runtime call (not a launch: see check_last_launch) failed.
inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

// for (i in [0, n)) spread over the whole grid.
#define IM_GRID_STRIDE_LOOP(i, n)                                           \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(blockDim.x) * gridDim.x)

}  // namespace im::kernels::cuda
