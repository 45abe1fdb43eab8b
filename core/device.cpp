#include "core/device.h"

#if IM_WITH_CUDA
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#endif

namespace im {

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

bool cuda_built() {
  return IM_WITH_CUDA != 0;
}

int cuda_device_count() {
#if IM_WITH_CUDA
  return kernels::cuda::device_count(nullptr);
#else
  return 0;
#endif
}

std::string device_description(Device device) {
#if IM_WITH_CUDA
  if (device.is_cuda()) return device.str() + " (" + kernels::cuda::device_name(device.index) + ")";
#endif
  return device.str();
}

void synchronize(Device device) {
#if IM_WITH_CUDA
  if (device.is_cuda()) kernels::cuda::stream_synchronize(kernels::cuda::current_stream());
#else
  (void)device;
#endif
}

std::string cuda_unavailable_reason() {
#if IM_WITH_CUDA
  std::string why;
  return kernels::cuda::device_count(&why) > 0 ? std::string() : why;
#else
  return "this build has no CUDA backend (configure with INFOMAMBA_CUDA=ON)";
#endif
}

}  // namespace im
