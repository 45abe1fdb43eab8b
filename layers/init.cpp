#include "layers/init.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/ops.h"

namespace im::layers {

Tensor init_fan_in_uniform(const Shape& shape, int64_t fan_in, Generator& gen, DType dtype) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  return rand_uniform(shape, gen, -bound, bound, dtype);
}

Tensor init_normal(const Shape& shape, double std, Generator& gen, DType dtype) {
  Tensor t = randn(shape, gen, dtype);
  return std == 1.0 ? t : mul(t, std);
}

Tensor init_dt_bias(int64_t n, Generator& gen, DType dtype, double dt_min, double dt_max,
                    double floor) {
  Tensor u = rand_uniform({n}, gen, 0.0, 1.0, DType::Float64);
  std::vector<double> out(n);
  const double* pu = u.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    double dt = std::exp(std::log(dt_min) + pu[i] * (std::log(dt_max) - std::log(dt_min)));
    dt = std::max(dt, floor);
    out[i] = dt + std::log(-std::expm1(-dt));  // softplus^{-1}(dt)
  }
  return Tensor::from_vector(out, {n}).to(dtype);
}

Tensor init_a_log(int64_t inner, int64_t state, DType dtype) {
  std::vector<double> v(inner * state);
  for (int64_t e = 0; e < inner; ++e)
    for (int64_t n = 0; n < state; ++n) v[e * state + n] = std::log(static_cast<double>(n + 1));
  return Tensor::from_vector(v, {inner, state}).to(dtype);
}

}  // namespace im::layers
