#include "kernels/cpu/adamw.h"

#include <cmath>

namespace im::kernels::cpu {

template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s) {
  const T b1 = T(s.beta1), b2 = T(s.beta2), eps = T(s.eps), lr = T(s.lr);
  const T decay = T(s.lr * s.weight_decay);
  const T inv_bc1 = T(1.0 / s.bias_correction1);
  const T inv_sqrt_bc2 = T(1.0 / std::sqrt(s.bias_correction2));
  for (int64_t i = 0; i < n; ++i) {
    const T g = grads[i];
    const T m = b1 * exp_avg[i] + (T(1) - b1) * g;
    const T v = b2 * exp_avg_sq[i] + (T(1) - b2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    T p = params[i] - decay * decay_mask[i] * params[i];
    p -= lr * (m * inv_bc1) / (std::sqrt(v) * inv_sqrt_bc2 + eps);
    params[i] = p;
  }
}

template <typename T>
double sum_of_squares(const T* x, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * x[i];
  return acc;
}

template <typename T>
void scale(T* x, T factor, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

template void adamw<float>(float*, const float*, float*, float*, const float*, int64_t,
                           const AdamWStep&);
template void adamw<double>(double*, const double*, double*, double*, const double*, int64_t,
                            const AdamWStep&);
template double sum_of_squares<float>(const float*, int64_t);
template double sum_of_squares<double>(const double*, int64_t);
template void scale<float>(float*, float, int64_t);
template void scale<double>(double*, double, int64_t);

}  // namespace im::kernels::cpu
