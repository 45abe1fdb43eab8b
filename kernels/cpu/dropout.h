// CPU kernel shared by dropout and drop-path (forward and backward alike).
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

// x is n elements in consecutive groups of `group` elements; group k keeps its values,
// times `scale`, when mask[k] is non-zero and is zeroed otherwise. Dropped elements are
// written as 0 rather than multiplied by 0, so an inf or NaN in a dropped slot does not
// leak through. group 1 is element-wise dropout; group numel/B is one decision per sample.
template <typename T>
void masked_scale(const T* x, const uint8_t* mask, int64_t group, T scale, T* out, int64_t n);

}  // namespace im::kernels::cpu
