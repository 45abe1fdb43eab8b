// bfloat16 storage type: the top 16 bits of an IEEE float32.
// Conversion from float rounds to nearest, ties to even, and keeps NaN a (quiet) NaN.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/host_device.h"

namespace im {

struct bfloat16 {
  uint16_t bits = 0;

  IM_HD static bfloat16 from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    bfloat16 out;
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep the sign, force a quiet NaN
      out.bits = static_cast<uint16_t>((u >> 16) | 0x0040u);
      return out;
    }
    const uint32_t lsb = (u >> 16) & 1u;  // ties go to the even neighbour
    u += 0x7fffu + lsb;
    out.bits = static_cast<uint16_t>(u >> 16);
    return out;
  }

  IM_HD float to_float() const {
    const uint32_t u = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

static_assert(sizeof(bfloat16) == 2, "bfloat16 must be two bytes");

// Element conversion between any two storage types, the same on host and device: to
// bfloat16 through float (round to nearest even), from bfloat16 exactly.
template <typename Dst, typename Src>
IM_HD Dst convert(Src v) {
  if constexpr (std::is_same_v<Src, Dst>) {
    return v;
  } else if constexpr (std::is_same_v<Dst, bfloat16>) {
    return bfloat16::from_float(static_cast<float>(v));
  } else if constexpr (std::is_same_v<Src, bfloat16>) {
    return static_cast<Dst>(v.to_float());
  } else {
    return static_cast<Dst>(v);
  }
}

// The type a kernel computes in for storage type T: bfloat16 values are widened to float
// on load and rounded once on store, so sums and intermediate results keep float precision.
template <typename T>
struct ComputeType {
  using type = T;
};
template <>
struct ComputeType<bfloat16> {
  using type = float;
};
template <typename T>
using compute_t = typename ComputeType<T>::type;

}  // namespace im
