// Philox draws on the GPU: the same (seed, offset, i) -> number mapping as core/rng.cpp,
// so a CUDA tensor filled from a generator state equals the CPU one. Each number is made
// in double and rounded to T once; for bfloat16 (GPU only) that is through float, so a
// bfloat16 draw is the float32 draw of the same state rounded to bfloat16.
#pragma once

#include <cstdint>

namespace im::kernels::cuda {

template <typename T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi);

template <typename T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset);

void bernoulli_mask(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset, double keep_prob);

}  // namespace im::kernels::cuda
