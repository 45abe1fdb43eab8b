#include "core/rng.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "kernels/philox.h"

#if IM_WITH_CUDA
#include "kernels/cuda/random.h"
#endif

namespace im {

uint64_t Generator::reserve(uint64_t words) {
  const uint64_t start = state_.offset;
  state_.offset += philox::blocks_for(words);
  return start;
}

Tensor rand_uniform(const Shape& shape, Generator& gen, double lo, double hi, DType dtype,
                    Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  // The draw is reserved inside the dispatch, so a rejected dtype leaves gen as it was.
  dispatch_compute(dtype, device, "rand_uniform", [&]<typename T>() {
    const uint64_t seed = gen.seed(), offset = gen.reserve(static_cast<uint64_t>(n));
    T* p = static_cast<T*>(out.data_ptr());
    if constexpr (has_cpu_kernel<T>) {
      if (device.is_cpu()) {
        for (int64_t i = 0; i < n; ++i) {
          const double u = philox::to_uniform(philox::word(seed, offset, i));
          p[i] = static_cast<T>(lo + (hi - lo) * u);
        }
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::uniform<T>(p, n, seed, offset, lo, hi);
#endif
  });
  return out;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  // The draw is reserved inside the dispatch, so a rejected dtype leaves gen as it was.
  dispatch_compute(dtype, device, "randn", [&]<typename T>() {
    const uint64_t seed = gen.seed(), offset = gen.reserve(2 * static_cast<uint64_t>(n));
    T* p = static_cast<T*>(out.data_ptr());
    if constexpr (has_cpu_kernel<T>) {
      if (device.is_cpu()) {
        for (int64_t i = 0; i < n; ++i) {
          // u1 in (0, 1] so the log is finite.
          const double u1 = 1.0 - philox::to_uniform(philox::word(seed, offset, 2 * i));
          const double u2 = philox::to_uniform(philox::word(seed, offset, 2 * i + 1));
          p[i] = static_cast<T>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
        }
        return;
      }
    }
#if IM_WITH_CUDA
    kernels::cuda::normal<T>(p, n, seed, offset);
#endif
  });
  return out;
}

Tensor bernoulli_mask(const Shape& shape, double keep_prob, Generator& gen, Device device) {
  IM_CHECK(keep_prob >= 0.0 && keep_prob <= 1.0, "bernoulli_mask: keep_prob ", keep_prob,
           " is outside [0, 1]");
  Tensor out = Tensor::empty(shape, DType::UInt8, device);
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed(), offset = gen.reserve(static_cast<uint64_t>(n));
  uint8_t* p = static_cast<uint8_t*>(out.data_ptr());  // host or device memory
  if (device.is_cuda()) {
#if IM_WITH_CUDA
    kernels::cuda::bernoulli_mask(p, n, seed, offset, keep_prob);
#endif
    return out;
  }
  for (int64_t i = 0; i < n; ++i)
    p[i] = philox::to_uniform(philox::word(seed, offset, i)) < keep_prob ? 1 : 0;
  return out;
}

}  // namespace im
