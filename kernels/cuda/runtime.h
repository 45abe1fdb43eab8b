// Thin, checked wrappers over the CUDA runtime, callable from plain C++ (core/ never
// includes CUDA headers). The runtime is linked statically and loads the driver only
// when first used, so a binary built with CUDA starts on a machine without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace im::kernels::cuda {

// Usable GPUs; 0 when there is no GPU or driver, with the reason in *why if given.
int device_count(std::string* why);
std::string device_name(int index);

void set_device(int index);
void* device_malloc(size_t bytes);  // throws on failure, naming the size
void device_free(void* ptr);
void memcpy_host_to_device(void* dst, const void* src, size_t bytes);
void memcpy_device_to_host(void* dst, const void* src, size_t bytes);
void memcpy_device_to_device(void* dst, const void* src, size_t bytes);
void synchronize();

// Throws im-style std::runtime_error naming `what` when the last launch failed.
void check_last_launch(const char* what);

}  // namespace im::kernels::cuda
