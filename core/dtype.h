// Element types a tensor can hold. Compute ops run in float32 and float64; bfloat16 is
// a storage type (converted on the way in and out); integer types hold indices,
// labels and raw bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/bfloat16.h"

namespace im {

enum class DType : uint8_t { Float32, Float64, BFloat16, Int32, Int64, UInt8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool is_floating(DType t);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<bfloat16>() {
  return DType::BFloat16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::Int64;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::UInt8;
}

}  // namespace im
