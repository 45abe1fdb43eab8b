// Philox draws on the GPU: the same (seed, offset, i) -> number mapping as core/rng.cpp,
// so a CUDA tensor filled from a generator state equals the CPU one.
#pragma once

#include <cstdint>

namespace im::kernels::cuda {

template <typename T>
void uniform(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi);

template <typename T>
void normal(T* out, int64_t n, uint64_t seed, uint64_t offset);

void bernoulli_mask(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset, double keep_prob);

}  // namespace im::kernels::cuda
