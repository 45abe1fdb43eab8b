// Turns a runtime dtype into a template argument for a kernel call:
//   dispatch_float(t.dtype(), "softmax", [&]<typename T>() { kernel<T>(...); });
#pragma once

#include <type_traits>
#include <utility>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace im {

// float32 and float64: the dtypes every compute op supports.
template <typename F>
decltype(auto) dispatch_float(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32:
      return f.template operator()<float>();
    case DType::Float64:
      return f.template operator()<double>();
    default:
      throw Error(std::string(op) + ": expected a float32 or float64 tensor, got " + dtype_name(t) +
                  " (convert with .to(DType::Float32))");
  }
}

// Whether the CPU has a kernel for element type T: bfloat16 computes on the GPU only, so a
// dispatch_compute lambda guards its CPU branch with `if constexpr (has_cpu_kernel<T>)`.
template <typename T>
inline constexpr bool has_cpu_kernel = !std::is_same_v<T, bfloat16>;

// float32 and float64 anywhere, and bfloat16 on a GPU: the dtypes of an op with a
// bfloat16 CUDA kernel (storage in bfloat16, compute in float; kernels use compute_t<T>).
// The CPU kernels are the float32/float64 reference; bfloat16 there is an error that says
// what to do.
template <typename F>
decltype(auto) dispatch_compute(DType t, Device device, const char* op, F&& f) {
  if (t == DType::BFloat16) {
    if (!device.is_cuda())
      throw Error(std::string(op) +
                  ": bfloat16 tensors compute on the GPU only (train.precision = \"bf16\" needs "
                  "train.device = \"cuda\"); on the CPU convert with .to(DType::Float32)");
    return f.template operator()<bfloat16>();
  }
  return dispatch_float(t, op, std::forward<F>(f));
}

// Integer index tensors (int32 or int64).
template <typename F>
decltype(auto) dispatch_index(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Int32:
      return f.template operator()<int32_t>();
    case DType::Int64:
      return f.template operator()<int64_t>();
    default:
      throw Error(std::string(op) + ": expected an int32 or int64 index tensor, got " +
                  dtype_name(t));
  }
}

template <typename F>
decltype(auto) dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::Float32:
      return f.template operator()<float>();
    case DType::Float64:
      return f.template operator()<double>();
    case DType::BFloat16:
      return f.template operator()<bfloat16>();
    case DType::Int32:
      return f.template operator()<int32_t>();
    case DType::Int64:
      return f.template operator()<int64_t>();
    case DType::UInt8:
      return f.template operator()<uint8_t>();
  }
  throw Error("unknown dtype");
}

}  // namespace im
