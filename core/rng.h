// Counter-based random numbers (Philox4x32-10). A Generator's whole state is two
// integers, (seed, offset): saving them in a checkpoint and restoring them reproduces
// every later draw exactly, and a CUDA kernel given the same pair draws the same
// numbers as the CPU.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace im {

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;  // Philox blocks (4 words each) consumed so far
  bool operator==(const GeneratorState&) const = default;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : state_{seed, 0} {}

  GeneratorState state() const { return state_; }
  void set_state(GeneratorState s) { state_ = s; }

  // Reserves `words` 32-bit words and returns the offset the draw starts at; kernels
  // then compute word i as philox::word(seed, offset, i).
  uint64_t reserve(uint64_t words);
  uint64_t seed() const { return state_.seed; }

 private:
  GeneratorState state_;
};

// Uniform in [lo, hi), one Philox word per element. On a CUDA device the same numbers
// are drawn by a kernel (the draw depends only on the generator state).
Tensor rand_uniform(const Shape& shape, Generator& gen, double lo = 0.0, double hi = 1.0,
                    DType dtype = DType::Float32, Device device = Device::cpu());
// Standard normal (Box–Muller; two words per element).
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32,
             Device device = Device::cpu());
// uint8 mask: 1 with probability keep_prob.
Tensor bernoulli_mask(const Shape& shape, double keep_prob, Generator& gen,
                      Device device = Device::cpu());

}  // namespace im
