// CUDA kernel shared by dropout and drop-path (forward and backward alike); the semantics
// of kernels/cpu/dropout.h. The mask itself comes from bernoulli_mask, whose CUDA draw
// equals the CPU one for the same generator state and does not depend on the dtype, so a
// bfloat16 run drops the same elements as a float32 one.
#pragma once

#include <cstdint>

#include "kernels/bfloat16.h"

namespace im::kernels::cuda {

// x is n elements in consecutive groups of `group`; group k keeps its values times `scale`
// when mask[k] is non-zero and is written as 0 otherwise (so an inf or NaN in a dropped
// slot does not leak through). One thread per element, grid-stride. The product is taken
// in compute_t<T> (scale is not rounded to bfloat16), so a bfloat16 output is the float32
// result rounded once.
template <typename T>
void masked_scale(const T* x, const uint8_t* mask, int64_t group, compute_t<T> scale, T* out,
                  int64_t n);

}  // namespace im::kernels::cuda
