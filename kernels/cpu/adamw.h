// AdamW over flat buffers in one pass (decoupled weight decay, Loshchilov & Hutter).
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

struct AdamWStep {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

// decay_mask[i] is 1 where weight decay applies, 0 elsewhere.
template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s);

// Sum of squares, accumulated in double.
template <typename T>
double sum_of_squares(const T* x, int64_t n);

template <typename T>
void scale(T* x, T factor, int64_t n);

}  // namespace im::kernels::cpu
