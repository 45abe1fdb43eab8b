// Where a tensor's memory lives, and what this process can run on.
#pragma once

#include <cstdint>
#include <string>

namespace im {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return Device{}; }
  static Device cuda(int index = 0) { return Device{DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

// True when this binary was built with the CUDA backend.
bool cuda_built();
// Number of usable GPUs; 0 on a machine without a GPU or driver (never throws, and
// never needs libcuda to load: the CUDA runtime is linked statically and finds the
// driver at run time).
int cuda_device_count();
// "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)".
std::string device_description(Device device);
// Waits until the work queued on `device` by this thread has finished (CPU: a no-op).
// Timers of a GPU step call it at each mark; nothing else needs to.
void synchronize(Device device);
// Why no GPU is usable ("built without CUDA", "no CUDA driver", ...); empty if one is.
std::string cuda_unavailable_reason();

}  // namespace im
