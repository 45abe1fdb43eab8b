// Philox4x32-10 counter-based generator (Salmon et al., SC'11), shared by CPU and CUDA.
// A stream is (seed, offset): element i of a draw that starts at `offset` comes from
// block offset + i/4, lane i%4. Any device computes the same numbers for the same
// (seed, offset, i), so CPU and GPU runs draw identically and state is two integers.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace im::philox {

struct Block {
  uint32_t v[4];
};

IM_HD void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Four random 32-bit words for counter `block` under key `seed`.
IM_HD Block generate(uint64_t seed, uint64_t block) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Block{{c0, c1, c2, c3}};
}

// The i-th 32-bit word of the draw that starts at block `offset`.
IM_HD uint32_t word(uint64_t seed, uint64_t offset, uint64_t i) {
  return generate(seed, offset + i / 4).v[i % 4];
}

// Uniform in [0, 1) with 24 random bits: exact in float32 and float64 alike.
IM_HD float to_uniform(uint32_t w) {
  return static_cast<float>(w >> 8) * (1.0f / 16777216.0f);
}

// Blocks consumed by a draw of n words.
IM_HD uint64_t blocks_for(uint64_t n) {
  return (n + 3) / 4;
}

}  // namespace im::philox
