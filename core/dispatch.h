// Turns a runtime dtype into a template argument for a kernel call:
//   dispatch_float(t.dtype(), "softmax", [&]<typename T>() { kernel<T>(...); });
#pragma once

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
