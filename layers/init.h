// Parameter initialisers. All draw from the model's Generator, so a seed fixes the model.
#pragma once

#include "core/rng.h"
#include "core/tensor.h"

namespace im::layers {

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default for linear and conv weights.
Tensor init_fan_in_uniform(const Shape& shape, int64_t fan_in, Generator& gen, DType dtype);
Tensor init_normal(const Shape& shape, double std, Generator& gen, DType dtype);
// b_dt of MODEL.md §3: inverse softplus of dt ~ logUniform(dt_min, dt_max), dt >= floor.
Tensor init_dt_bias(int64_t n, Generator& gen, DType dtype, double dt_min = 1e-3,
                    double dt_max = 0.1, double floor = 1e-4);
// A_log of MODEL.md §3: row e is log(1..N).
Tensor init_a_log(int64_t inner, int64_t state, DType dtype);

}  // namespace im::layers
